// The back office end to end on both engines and both suites: issue (sealed before LOAD, the same request
// never issued twice), two key rotations, then a bill, a pki receipt and a sym receipt verify against the key
// history with the key that made them; tampered ones fail with their reason; TF_V is signed by the current
// certified key (with its A4), which a card personalised with the root key alone accepts.

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hex } from '../sdk/bytes.js';
import { CryptoError, InvalidInputError } from '../sdk/errors.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { keyId, type Signer } from '../sdk/crypto/suite.js';
import { decodeBill } from '../sdk/roles/bill.js';
import { decodeKeyCertificate } from '../sdk/roles/key-certificate.js';
import { decodeVerificationCode } from '../sdk/ticket.js';
import { KeyGenerationCentre } from '../sdk/roles/kgc.js';
import type { SuiteName } from '../sdk/spec.js';
import { World } from '../testing/world.js';
import { ENGINES } from '../test/helpers/stores.js';
import { arbitrate, parseEvidence, type ArbitrationContext } from './arbitration.js';
import { clearingReport } from './clearing.js';
import { Backoffice, billOf, TFV_SIGNED_BY, type KeyCustody } from './service.js';
import { DatabaseError } from './store/database.js';
import { NotFoundError, StoreConflictError, type Store } from './store/store.js';

const cases = ENGINES.flatMap((e) => (['rsa', 'sm9'] as SuiteName[]).map((suite) => ({ ...e, suite })));

describe.each(cases)('back office on $engine, suite $suite', ({ suite, skip, open }) => {
  let store: Store;
  let dispose: () => Promise<void>;
  let world: World;
  let bo: Backoffice;
  let now = 1_900_000_000;
  const rotated = new Map<string, Signer>();

  beforeAll(async () => {
    if (skip) return;
    ({ store, dispose } = await open());
    world = World.create(suite, 'CR');
    world.now = now;
    const custody: KeyCustody = {
      operator: 'CR',
      suite,
      rootPublicKey: world.keys.authorityKey.publicKey,
      root: () => world.keys.authorityKey,
      signing: (r) => rotated.get(r.keyName)!,
      cardTrust: world.keys.cardTrust,
      masterKeys: () => [world.masterKey],
    };
    bo = new Backoffice(store, custody, () => now);
  });
  afterAll(async () => {
    await dispose?.();
  });

  function newSigningKey(n: number): { signer: Signer; keyName: string; identity?: string } {
    if (suite === 'rsa') return { signer: RsaPrivateKey.generate(2048), keyName: `authority-${n}` };
    const identity = `eticket:authority:CR:${n}`;
    return { signer: (world.keys.kgc as KeyGenerationCentre).signer(identity), keyName: `authority-${n}`, identity };
  }

  async function context(): Promise<ArbitrationContext> {
    return { history: await store.authorityKeys('CR'), cardTrust: world.keys.cardTrust, masterKeys: [world.masterKey], card: (s) => store.card(s) };
  }

  it.skipIf(skip)('issues before LOAD, loads, and gives the same ticket back for the same request key', async () => {
    const { session, issuing, credentials } = await world.newCard();
    const request = { serviceDate: '2030-04-01', train: 'G1', fare: 55300, currency: 'CNY' };
    const first = await bo.issue({ request, card: credentials, requestKey: 'line-2' });
    expect(first.status).toBe('new');
    expect(first.ticket.status).toBe('sealed');
    expect((await store.pendingFor(hex(credentials.serial))).map((t) => t.tid)).toEqual([first.ticket.tid]);
    const again = await bo.issue({ request, card: credentials, requestKey: 'line-2' });
    expect(again).toMatchObject({ status: 'existing', ticket: { tid: first.ticket.tid } });
    expect(again.ticket.sealed).toEqual(first.ticket.sealed);
    const loaded = await issuing.load(first.ticket.sealed);
    await bo.markLoaded(loaded.tid, loaded.sequenceNumber);
    expect(await store.ticket('CR', first.ticket.tid)).toMatchObject({ status: 'loaded', sequenceNumber: loaded.sequenceNumber });
    const bill = billOf(first.bill!);
    expect(bill).toMatchObject({ kind: 'sale', tid: first.ticket.tid, price: 55300, currency: 'CNY', seller: '(operator)', keyId: hex(keyId(world.keys.authorityKey.publicKey)) });
    // The TID stays with its card: another card asking for it explicitly is refused.
    const other = await world.newCard();
    await expect(bo.issue({ request: { ...request, tid: first.ticket.tid }, card: other.credentials })).rejects.toThrow(StoreConflictError);
    await session.close();
  });

  it.skipIf(skip)('issueMany: a chunk of plain requests in one transaction (not one by one), the same records as issue(); the named, the duplicate and the invalid ones one by one; a re-run gets every ticket back', async () => {
    const { session, issuing, credentials } = await world.newCard();
    const serial = hex(credentials.serial);
    const earlier = await bo.issue({ request: { serviceDate: '2030-04-02', train: 'M0', tid: 'MANY-0' }, card: credentials });
    const inputs = [
      { request: { serviceDate: '2030-04-02', train: 'M1', fare: 100, currency: 'CNY' }, card: credentials, requestKey: 'many-1' },
      { request: { serviceDate: '2030-04-02', train: 'M2', tid: 'MANY-2' }, card: credentials },
      { request: { serviceDate: '2030-04-02', train: 'M0', tid: 'MANY-0' }, card: credentials }, // named by the store: issue()
      { request: { serviceDate: '2030-13-02', train: 'M3' }, card: credentials, requestKey: 'many-3' }, // invalid: issue() says why
      { request: { serviceDate: '2030-04-02', train: 'M1', fare: 100, currency: 'CNY' }, card: credentials, requestKey: 'many-1' }, // same key again: issue()
      { request: { serviceDate: '2030-04-02', train: 'M4' }, card: credentials, requestKey: 'many-4' },
    ];
    const one = vi.spyOn(bo, 'issue');
    let results: Awaited<ReturnType<Backoffice['issueMany']>>;
    try {
      results = await bo.issueMany(inputs);
      expect(one.mock.calls.map((c) => c[0].request.train)).toEqual(['M0', 'M3', 'M1']);
    } finally {
      one.mockRestore();
    }
    const outcome = (i: number) => {
      const r = results[i];
      if (!('outcome' in r)) throw new Error(`row ${i}: ${r.error.message}`);
      return r.outcome;
    };
    expect(results[3]).toMatchObject({ error: expect.any(InvalidInputError) });
    expect(outcome(0)).toMatchObject({ status: 'new', ticket: { status: 'sealed', cardSerial: serial } });
    expect(outcome(1)).toMatchObject({ status: 'new', ticket: { tid: 'MANY-2' } });
    expect(outcome(2)).toMatchObject({ status: 'existing', ticket: { tid: 'MANY-0', sealed: earlier.ticket.sealed } });
    expect(outcome(4)).toMatchObject({ status: 'existing', ticket: { tid: outcome(0).ticket.tid, sealed: outcome(0).ticket.sealed } });
    const fresh = [0, 1, 5].map(outcome);
    // Generated TIDs are numbered like issue()'s, distinct, and the store holds each ticket sealed with one sale bill.
    expect(new Set(fresh.map((o) => o.ticket.tid)).size).toBe(3);
    for (const o of fresh) {
      expect(await store.ticket('CR', o.ticket.tid)).toMatchObject({ status: 'sealed', sealed: o.ticket.sealed, face: o.ticket.face });
      const bills = await store.bills('CR', o.ticket.tid);
      expect(bills.map((b) => b.kind)).toEqual(['sale']);
      expect(billOf(bills[0])).toMatchObject({ tid: o.ticket.tid, card: serial });
    }
    expect(billOf(fresh[0].bill!)).toMatchObject({ price: 100, currency: 'CNY' });
    // The card takes what the chunk sealed (TF_V and the envelope are right), and a re-run changes nothing.
    for (const o of fresh) expect((await issuing.load(o.ticket.sealed)).tid).toBe(o.ticket.tid);
    const again = await bo.issueMany(inputs);
    expect(again.map((r) => ('outcome' in r ? [r.outcome.status, r.outcome.ticket.tid] : r.error.constructor.name))).toEqual([
      ['existing', fresh[0].ticket.tid],
      ['existing', 'MANY-2'],
      ['existing', 'MANY-0'],
      'InvalidInputError',
      ['existing', fresh[0].ticket.tid],
      ['existing', fresh[2].ticket.tid],
    ]);
    expect((await store.pendingFor(serial)).map((t) => t.tid).sort()).toEqual(['MANY-0', 'MANY-2', fresh[0].ticket.tid, fresh[2].ticket.tid].sort());
    // A ticket the card never got (the batch stopped before it) is withdrawn: cancelled, refunded, its key free again.
    const never = await bo.issueMany([{ request: { serviceDate: '2030-04-02', train: 'M5' }, card: credentials, requestKey: 'many-5' }]);
    const withdrawn = (never[0] as { outcome: { ticket: { tid: string } } }).outcome.ticket.tid;
    await bo.withdrawUnloaded([withdrawn]);
    expect(await store.ticket('CR', withdrawn)).toMatchObject({ status: 'cancelled' });
    expect((await store.bills('CR', withdrawn)).map((b) => b.kind).sort()).toEqual(['refund', 'sale']);
    expect(await store.tidForRequest('CR', 'many-5')).toBeUndefined();
    await session.close();
  });

  it.skipIf(skip)('a TID withdrawn from a full card can be issued again to another card: issuance 2 with its own sale; each issuance refunded at most once', async () => {
    const { credentials: full } = await world.newCard();
    const { credentials: next } = await world.newCard();
    const { credentials: third } = await world.newCard();
    const request = { tid: 'WD-1', serviceDate: '2030-04-02', train: 'W1', fare: 700, currency: 'CNY' };
    const kinds = async () => (await store.bills('CR', 'WD-1')).map((b) => [b.kind, b.issuance]);
    const first = await bo.issue({ request, card: full });
    expect(first).toMatchObject({ status: 'new', ticket: { issuance: 1 }, bill: { kind: 'sale', issuance: 1 } });
    await bo.withdrawUnloaded([first.ticket.tid]);
    expect(await store.ticket('CR', 'WD-1')).toMatchObject({ status: 'cancelled', issuance: 1 });
    expect(await kinds()).toEqual([['sale', 1], ['refund', 1]]);

    const again = await bo.issue({ request, card: next });
    expect(again).toMatchObject({ status: 'new', ticket: { tid: 'WD-1', cardSerial: hex(next.serial), status: 'sealed', issuance: 2 }, bill: { kind: 'sale', issuance: 2, cardSerial: hex(next.serial) } });
    expect(billOf(again.bill!)).toMatchObject({ kind: 'sale', tid: 'WD-1', card: hex(next.serial), price: 700 });
    expect(await store.ticket('CR', 'WD-1')).toMatchObject({ status: 'sealed', issuance: 2, cardSerial: hex(next.serial) });
    expect(await kinds()).toEqual([['sale', 1], ['refund', 1], ['sale', 2]]);
    // The same request again is this issuance, with this issuance's sale bill (not the first card's).
    const same = await bo.issue({ request, card: next });
    expect(same).toMatchObject({ status: 'existing', ticket: { issuance: 2 }, bill: { billId: again.bill!.billId } });
    // The TID is now held by the second card: the first one cannot take it back.
    const taken = await bo.issue({ request, card: full }).catch((e: unknown) => e);
    expect(taken).toBeInstanceOf(StoreConflictError);
    expect(taken).toMatchObject({ reason: 'tid_taken' });

    // Withdrawing the re-issue refunds issuance 2 (the refund of issuance 1 does not count for it), once.
    await bo.withdrawUnloaded(['WD-1']);
    expect(await kinds()).toEqual([['sale', 1], ['refund', 1], ['sale', 2], ['refund', 2]]);
    await bo.withdrawUnloaded(['WD-1']);
    const cancelled = await bo.cancel('WD-1', { source: 'test' });
    expect(cancelled).toMatchObject({ alreadyClosed: true, refund: { kind: 'refund', issuance: 2 } });
    expect(await kinds()).toEqual([['sale', 1], ['refund', 1], ['sale', 2], ['refund', 2]]);

    // A third issuance, and the database itself refuses a second refund of one issuance.
    const third3 = await bo.issue({ request, card: third });
    expect(third3).toMatchObject({ status: 'new', ticket: { issuance: 3 }, bill: { issuance: 3 } });
    const refund2 = (await store.bills('CR', 'WD-1')).find((b) => b.kind === 'refund' && b.issuance === 2)!;
    const twice = await store.transaction((tx) => store.insertBill({ ...refund2, billId: 'F'.repeat(32) }, tx)).catch((e: unknown) => e);
    expect(twice).toBeInstanceOf(DatabaseError);
    expect(twice).toMatchObject({ code: '23505' });
    // Sales less refunds: the TID's three sales and two refunds net to the one issuance still sold.
    const bills = await store.bills('CR', 'WD-1');
    const net = bills.reduce((sum, b) => sum + (b.kind === 'sale' ? b.price : -b.price), 0);
    expect(net).toBe(700);

    // A batch (issueMany) naming a withdrawn TID: the store names it, so it goes through issue() one by one (the next
    // issuance); the chunk's new TID goes in bulk as issuance 1.
    await bo.withdrawUnloaded(['WD-1']);
    const one = vi.spyOn(bo, 'issue');
    let batch: Awaited<ReturnType<Backoffice['issueMany']>>;
    try {
      batch = await bo.issueMany([
        { request, card: next },
        { request: { ...request, tid: 'WD-2' }, card: next },
      ]);
      expect(one.mock.calls.map((c) => c[0].request.tid)).toEqual(['WD-1']);
    } finally {
      one.mockRestore();
    }
    expect(batch.map((r) => ('outcome' in r ? [r.outcome.status, r.outcome.ticket.tid, r.outcome.ticket.issuance, r.outcome.bill?.issuance] : r.error.message))).toEqual([
      ['new', 'WD-1', 4, 4],
      ['new', 'WD-2', 1, 1],
    ]);
    expect(await kinds()).toEqual([['sale', 1], ['refund', 1], ['sale', 2], ['refund', 2], ['sale', 3], ['refund', 3], ['sale', 4]]);
    expect((await store.bills('CR', 'WD-2')).map((b) => [b.kind, b.issuance])).toEqual([['sale', 1]]);
    // Clearing lists the ticket sold and never seen at a gate once: its current issuance's sale, not its four sales.
    const clearing = await clearingReport(store, 'CR', {});
    expect(clearing.mismatches.filter((m) => m.tid === 'WD-1').map((m) => [m.kind, m.card])).toEqual([['never_seen', hex(next.serial)]]);
  });

  it.skipIf(skip)('after two rotations a bill from each key, a pki receipt and a sym receipt verify; tampered ones fail with the reason', async () => {
    const { session, issuing, credentials } = await world.newCard();
    const issueOne = async (tid: string) => {
      const o = await bo.issue({ request: { tid, serviceDate: '2030-04-02', train: 'D5', fare: 100, currency: 'CNY' }, card: credentials });
      await issuing.load(o.ticket.sealed);
      await bo.markLoaded(tid);
      return o;
    };
    const byRoot = await issueOne('CR-R0');
    now += 60;
    const k1 = newSigningKey(1);
    rotated.set(k1.keyName, k1.signer);
    const rec1 = await bo.rotate(k1, { validDays: 30 });
    now += 60;
    const byK1 = await issueOne('CR-R1');
    now += 60;
    const k2 = newSigningKey(2);
    rotated.set(k2.keyName, k2.signer);
    const rec2 = await bo.rotate(k2, { validDays: 30 });
    now += 60;
    const byK2 = await issueOne('CR-R2');
    expect([byRoot, byK1, byK2].map((o) => billOf(o.bill!).keyId)).toEqual([hex(keyId(world.keys.authorityKey.publicKey)), rec1.keyId, rec2.keyId]);
    expect(decodeKeyCertificate(rec2.certificate!).scopes).toEqual(['CR']);
    expect((await store.authorityKey(rec1.keyId))!.retiredAt).toBeInstanceOf(Date);
    // TF_V is signed by the current key and carries its A4, so the card (which holds only the root) took all three.
    expect(TFV_SIGNED_BY).toBe('current');
    expect([byRoot, byK1, byK2].map((o) => o.ticket.keyId)).toEqual([hex(keyId(world.keys.authorityKey.publicKey)), rec1.keyId, rec2.keyId]);
    expect(decodeVerificationCode(byRoot.ticket.verificationCode).certificate).toBeUndefined();
    expect(hex(decodeVerificationCode(byK2.ticket.verificationCode).certificate!)).toBe(hex(rec2.certificate!));
    expect((await issuing.capacity()).tickets).toBe(3);

    // Receipts: pki (card signature) and sym (MAC through the master key).
    world.now = now;
    const pkiGate = world.checkingTerminal(session);
    const v = await pkiGate.verifyTicket({ tid: 'CR-R1' }, { verificationCode: false });
    const pkiReceipt = await pkiGate.recordUsage(v, 'ENTRY');
    await bo.recordReceipt({ encoded: pkiReceipt.encoded }, 'test-gate');
    const symGate = world.checkingTerminal(session, { mode: 'sym' });
    const sv = await symGate.verifyTicket({ tid: 'CR-R2' }, { verificationCode: false });
    const symReceipt = await symGate.recordUsage(sv, 'ENTRY');
    await bo.recordReceipt({ encoded: symReceipt.encoded, transaction: symReceipt.sym }, 'test-gate');
    expect(await store.receipts('CR', 'CR-R2')).toMatchObject([{ mode: 'sym', kind: 'usage', counter: 1 }]);

    const ctx = await context();
    for (const [o, key] of [[byRoot, 'root'], [byK1, 'signing'], [byK2, 'signing']] as const) {
      const verdict = await arbitrate(parseEvidence(o.bill!.document), ctx);
      expect(verdict, o.ticket.tid).toMatchObject({ ok: true, kind: 'bill', validAtTime: true, signer: { role: key, keyId: billOf(o.bill!).keyId } });
    }
    const pkiVerdict = await arbitrate(parseEvidence(JSON.stringify({ receipt: hex(pkiReceipt.encoded) })), ctx);
    expect(pkiVerdict).toMatchObject({ ok: true, kind: 'receipt', signer: { role: 'card', subject: hex(credentials.serial) }, subject: { tid: 'CR-R1', counter: 1 } });
    const symJson = JSON.stringify({ receipt: hex(symReceipt.encoded), transaction: (await store.receipts('CR', 'CR-R2'))[0].transaction });
    expect(await arbitrate(parseEvidence(symJson), ctx)).toMatchObject({ ok: true, kind: 'receipt', signer: { role: 'master', subject: 'CR' }, subject: { tid: 'CR-R2', mode: 'sym' } });
    const ticketVerdict = await arbitrate({ kind: 'ticket', face: byK1.ticket.face, verificationCode: byK1.ticket.verificationCode }, ctx);
    expect(ticketVerdict).toMatchObject({ ok: true, kind: 'ticket', validAtTime: true, signer: { role: 'signing', keyId: rec1.keyId }, subject: { tid: 'CR-R1', card: hex(credentials.serial) } });
    expect(await arbitrate({ kind: 'ticket', face: byRoot.ticket.face, verificationCode: byRoot.ticket.verificationCode }, ctx)).toMatchObject({ ok: true, signer: { role: 'root' } });

    // Tampered: the price of a bill, one byte of each receipt, the face of a ticket.
    const bill = decodeBill(byK1.bill!.document);
    expect(await arbitrate({ kind: 'bill', bill: { ...bill, price: 1 } }, ctx)).toMatchObject({ ok: false, reason: expect.stringMatching(/bill signature does not verify with key .*forged or altered/) });
    const badPki = pkiReceipt.encoded.slice();
    badPki[badPki.length - 5] ^= 1;
    expect(await arbitrate({ kind: 'receipt', encoded: badPki }, ctx)).toMatchObject({ ok: false, reason: expect.stringMatching(/receipt signature does not verify/) });
    const badSym = symReceipt.encoded.slice();
    badSym[8] ^= 1;
    expect(await arbitrate({ kind: 'receipt', encoded: badSym, transaction: symReceipt.sym }, ctx)).toMatchObject({ ok: false, reason: expect.stringMatching(/sym receipt does not verify/) });
    const badFace = byK1.ticket.face.slice();
    badFace[badFace.length - 1] ^= 1;
    expect(await arbitrate({ kind: 'ticket', face: badFace, verificationCode: byK1.ticket.verificationCode }, ctx)).toMatchObject({ ok: false, reason: expect.stringMatching(/TF_V does not verify/) });
    // A bill claiming a time after its key was retired is not valid at that time.
    const late = { ...bill, time: now + 10 };
    const lateVerdict = await arbitrate({ kind: 'bill', bill: late }, ctx);
    expect(lateVerdict.ok).toBe(false);
    // The tampered receipt is refused by the store too.
    await expect(bo.recordReceipt({ encoded: badPki }, 'test')).rejects.toThrow(CryptoError);
    await session.close();
  });

  it.skipIf(skip)('cancelling: a sealed ticket directly, a loaded one only with its deletion receipt; each gets one refund bill', async () => {
    const { session, issuing, credentials } = await world.newCard();
    const sealedOnly = await bo.issue({ request: { serviceDate: '2030-04-03', fare: 700, currency: 'CNY' }, card: credentials });
    const c1 = await bo.cancel(sealedOnly.ticket.tid, { source: 'test' });
    expect(c1).toMatchObject({ alreadyClosed: false, ticket: { status: 'cancelled' }, refund: { kind: 'refund', price: 700 } });
    expect(await bo.cancel(sealedOnly.ticket.tid, { source: 'test' })).toMatchObject({ alreadyClosed: true, refund: { billId: c1.refund!.billId } });

    const loaded = await bo.issue({ request: { serviceDate: '2030-04-03', fare: 800, currency: 'CNY' }, card: credentials });
    await issuing.load(loaded.ticket.sealed);
    await bo.markLoaded(loaded.ticket.tid);
    await expect(bo.cancel(loaded.ticket.tid, { source: 'test' })).rejects.toThrow(/deletion receipt/);
    world.now = now;
    const gate = world.checkingTerminal(session);
    const deletion = await gate.deleteTicket(await gate.verifyTicket({ tid: loaded.ticket.tid }, { verificationCode: false }));
    const c2 = await bo.cancel(loaded.ticket.tid, { source: 'test', deletion: { encoded: deletion.encoded } });
    expect(c2).toMatchObject({ ticket: { status: 'deleted' }, refund: { kind: 'refund', price: 800 } });
    expect(await store.receipts('CR', loaded.ticket.tid)).toMatchObject([{ kind: 'deletion', mode: 'pki' }]);
    await session.close();
  });

  it.skipIf(skip)('rebooking: the replacement is sealed while the old ticket stays open; a refused replacement changes nothing; the deletion receipt closes and refunds the old one', async () => {
    const { session, issuing, credentials } = await world.newCard();
    const bills = async (tid: string) => (await store.bills('CR', tid)).map((b) => b.kind).sort();
    const old = await bo.issue({ request: { tid: 'RB-OLD', serviceDate: '2030-05-01', train: 'G1', fare: 900, currency: 'CNY' }, card: credentials });
    await issuing.load(old.ticket.sealed);
    await bo.markLoaded('RB-OLD');
    const taken = await bo.issue({ request: { tid: 'RB-TAKEN', serviceDate: '2030-05-01', fare: 10, currency: 'CNY' }, card: credentials });

    // A TID that is taken (here by an unrelated ticket of the same card): refused, the old ticket untouched.
    const refused = await bo.issue({ request: { tid: 'RB-TAKEN', serviceDate: '2030-05-02', fare: 900, currency: 'CNY' }, card: credentials, replaces: 'RB-OLD' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StoreConflictError);
    expect(refused).toMatchObject({ reason: 'tid_taken' });
    expect(await store.ticket('CR', 'RB-OLD')).toMatchObject({ status: 'loaded', replacedBy: undefined });
    expect(await store.ticket('CR', 'RB-TAKEN')).toMatchObject({ status: 'sealed', tid: taken.ticket.tid });
    // Replacing a ticket the store never had, or a cancelled one, is refused too.
    const unknown = await bo.issue({ request: { serviceDate: '2030-05-02' }, card: credentials, replaces: 'RB-NEVER' }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(NotFoundError);
    expect((unknown as Error).message).toBe('no ticket RB-NEVER to replace');
    await bo.cancel('RB-TAKEN', { source: 'test' });
    const cancelled = await bo.issue({ request: { serviceDate: '2030-05-02' }, card: credentials, replaces: 'RB-TAKEN' }).catch((e: unknown) => e);
    expect(cancelled).toMatchObject({ reason: 'not_replaceable' });

    // A first replacement, sealed: the old ticket stays loaded (still on the card), named replaced by it.
    const first = await bo.issue({ request: { tid: 'RB-NEW1', serviceDate: '2030-05-02', train: 'G1', fare: 900, currency: 'CNY' }, card: credentials, replaces: 'RB-OLD', requestKey: 'rebook-1' });
    expect(await store.ticket('CR', 'RB-OLD')).toMatchObject({ status: 'loaded', replacedBy: 'RB-NEW1' });
    expect(await bills('RB-OLD')).toEqual(['sale']);
    // The same rebooking again (a retry after a crash) gets the same replacement back.
    const again = await bo.issue({ request: { tid: 'RB-NEW1', serviceDate: '2030-05-02', train: 'G1', fare: 900, currency: 'CNY' }, card: credentials, replaces: 'RB-OLD', requestKey: 'rebook-1' });
    expect(again).toMatchObject({ status: 'existing', ticket: { tid: 'RB-NEW1' } });
    // An existing ticket is handed back to a rebooking only as the replacement of that same ticket.
    const elsewhere = await bo.issue({ request: { tid: 'RB-NEW1', serviceDate: '2030-05-02' }, card: credentials, replaces: 'RB-TAKEN' }).catch((e: unknown) => e);
    expect(elsewhere).toBeInstanceOf(StoreConflictError);
    expect(elsewhere).toMatchObject({ reason: 'tid_taken' });
    // The passenger changes their mind before the card is touched: the unloaded first replacement is cancelled and refunded.
    const second = await bo.issue({ request: { tid: 'RB-NEW2', serviceDate: '2030-05-03', train: 'G5', fare: 950, currency: 'CNY' }, card: credentials, replaces: 'RB-OLD', requestKey: 'rebook-2' });
    expect(await store.ticket('CR', 'RB-NEW1')).toMatchObject({ status: 'cancelled' });
    expect(await bills('RB-NEW1')).toEqual(['refund', 'sale']);
    expect(await store.ticket('CR', 'RB-OLD')).toMatchObject({ status: 'loaded', replacedBy: 'RB-NEW2' });

    // The card deletes the old ticket: its receipt closes it and refunds it, once.
    world.now = now;
    const gate = world.checkingTerminal(session);
    const deletion = await gate.deleteTicket(await gate.verifyTicket({ tid: 'RB-OLD' }, { verificationCode: false }));
    await bo.recordDeletion({ encoded: deletion.encoded }, 'test');
    expect(await store.ticket('CR', 'RB-OLD')).toMatchObject({ status: 'deleted', replacedBy: 'RB-NEW2' });
    expect(await bills('RB-OLD')).toEqual(['refund', 'sale']);
    expect(await store.receipts('CR', 'RB-OLD')).toMatchObject([{ kind: 'deletion' }]);
    await issuing.load(second.ticket.sealed);
    await bo.markLoaded('RB-NEW2');
    // Once its replacement is loaded, the old ticket cannot be replaced a second time.
    const twice = await bo.issue({ request: { serviceDate: '2030-05-04' }, card: credentials, replaces: 'RB-OLD' }).catch((e: unknown) => e);
    expect(twice).toBeInstanceOf(StoreConflictError);
    expect(twice).toMatchObject({ reason: 'already_replaced' });
    expect(await bills('RB-NEW2')).toEqual(['sale']);
    await session.close();
  });
});
