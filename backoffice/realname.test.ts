// Real-name tickets in the back office, on both engines: issuance (the face carries 95/96 and no name; the record
// is sealed at rest), reads by permitted terminals with TOTP (each refusal with its reason, logged), the read limit
// under concurrency, destruction at expiry, deletion, cancellation and use-up, and the data gone from the
// database's files afterwards (read there by the server, with a positive control before), a swapped record caught.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fromHex, hex } from '../sdk/bytes.js';
import { totpForStep } from '../sdk/crypto/totp.js';
import { checkHolderAnswer, HolderBindingError, openHolderAnswer, type HolderRecord } from '../sdk/roles/realname.js';
import { newHolderRef } from '../sdk/roles/realname.js';
import { decodeTicketFace, type TicketFace } from '../sdk/ticket.js';
import { World } from '../testing/world.js';
import { ENGINES } from '../test/helpers/stores.js';
import { fileHasBytes, relationFiles } from '../test/helpers/db-files.js';
import { HOLDERS, MemoryVault, testTerminal, type TestTerminal } from '../test/helpers/realname.js';
import { HolderRefusedError, type HolderReadRequest } from './realname.js';
import { Backoffice, type KeyCustody } from './service.js';
import { DatabaseError } from './store/database.js';
import { StoreConflictError, type Store } from './store/store.js';

const DAY = 86400;

describe.each(ENGINES)('real-name tickets on $engine', ({ skip, open }) => {
  let store: Store;
  let dispose: () => Promise<void>;
  let world: World;
  let bo: Backoffice;
  let vault: MemoryVault;
  let now = 1_900_000_000;
  let gate: TestTerminal;
  let inspector: TestTerminal;
  let stranger: TestTerminal;
  let kiosk: TestTerminal;
  const today = () => Number(new Date(now * 1000).toISOString().slice(0, 10).replace(/-/g, ''));

  beforeAll(async () => {
    if (skip) return;
    ({ store, dispose } = await open());
    world = World.create('rsa', 'CR');
    world.now = now;
    vault = new MemoryVault();
    const custody: KeyCustody = {
      operator: 'CR',
      suite: 'rsa',
      rootPublicKey: world.keys.authorityKey.publicKey,
      root: () => world.keys.authorityKey,
      signing: () => world.keys.authorityKey,
      cardTrust: world.keys.cardTrust,
      masterKeys: () => [world.masterKey],
      holderVault: () => vault,
    };
    bo = new Backoffice(store, custody, () => now);
    gate = testTerminal('rsa', 'gate-bjs', 'gate', { station: 'BJS' });
    inspector = testTerminal('rsa', 'insp-1', 'inspector', { totp: { algorithm: 'SHA256', digits: 8, period: 30 } });
    stranger = testTerminal('rsa', 'gate-xyz', 'gate', { station: 'XYZ' });
    kiosk = testTerminal('rsa', 'kiosk', 'issuing');
    for (const t of [gate, inspector, stranger]) await bo.realName.registerTerminal(t.client, t.totp);
    await store.addClient(kiosk.client);
    await store.holders.grant('gate-bjs', { station: 'BJS' });
    await store.holders.grant('insp-1', { operator: 'CR', kind: 1 });
    await store.holders.grant('gate-xyz', { station: 'XYZ' });
    await store.holders.setReadLimit(1, 3);
  });
  afterAll(async () => {
    await dispose?.();
  });
  // Each test starts a few TOTP steps later: the steps earlier tests spent are behind it.
  beforeEach(() => {
    now += 120;
    if (world) world.now = now;
  });

  let nextTid = 1;
  async function issue(holder: HolderRecord, over: { kind?: number; validUntil?: number; origin?: string } = {}) {
    const { credentials, issuing, session } = await world.newCard();
    const out = await bo.issue({
      request: { serviceDate: today(), tid: `CR-RN-${nextTid++}`, origin: over.origin ?? 'BJS', destination: 'SHH', kind: over.kind ?? 1, validFrom: now - 60, validUntil: over.validUntil ?? now + DAY },
      card: credentials,
      holder,
    });
    return { ...out, face: decodeTicketFace(out.ticket.face), credentials, issuing, session };
  }

  // Each request spends a TOTP step: the terminal names the next one it has not used, as its client does.
  const lastStep = new Map<string, number>();
  function request(t: TestTerminal, face: TicketFace, over: Partial<HolderReadRequest> & { step?: number } = {}): HolderReadRequest {
    const p = t.totp.parameters;
    const step = over.step ?? Math.max(Math.floor(now / p.period), (lastStep.get(t.client.clientId) ?? -1) + 1);
    lastStep.set(t.client.clientId, step);
    return { operator: face.operator, tid: face.tid, holderRef: face.holderRef!, challenge: newHolderRef(), totp: { code: totpForStep(t.totp.secret, step, p), time: step * p.period }, ...over };
  }

  async function client(t: TestTerminal) {
    return (await store.client(t.client.clientId))!;
  }

  async function refusedWith(t: TestTerminal, req: HolderReadRequest, reason: string): Promise<void> {
    const before = (await store.holders.accessLog({ tid: req.tid })).length;
    const err = await bo.realName.read(await client(t), req).catch((e) => e);
    expect(err).toBeInstanceOf(HolderRefusedError);
    expect((err as HolderRefusedError).reason).toBe(reason);
    const log = await store.holders.accessLog({ tid: req.tid });
    expect(log.length).toBe(before + 1);
    expect(log.at(-1)).toMatchObject({ clientId: t.client.clientId, tid: req.tid, outcome: 'refused', reason });
  }

  it.skipIf(skip)('a real-name ticket: 95/96 on the face, no name on it or in the sealed ticket; the record sealed at rest', async () => {
    const { face, ticket } = await issue(HOLDERS[0]);
    expect(face.passenger).toBeUndefined();
    expect(face.holderRef).toHaveLength(16);
    expect(face.holderBinding).toHaveLength(32);
    for (const blob of [ticket.face, ticket.sealed, ticket.verificationCode]) expect(Buffer.from(blob).includes(Buffer.from(HOLDERS[0].name))).toBe(false);
    expect(await store.holders.ticket('CR', face.tid)).toMatchObject({ state: 'held', readsMax: 3, readsUsed: 0, origin: 'BJS', kind: 1, expiresAt: new Date(face.validUntil * 1000) });
    const files = await relationFiles(store.db, 'holder_records');
    expect(files.bytes.includes(Buffer.from((await store.holders.record('CR', face.tid))!.sealed.subarray(0, 32)))).toBe(true);
    for (const s of [HOLDERS[0].name, HOLDERS[0].document.number]) expect(files.bytes.includes(Buffer.from(s))).toBe(false);
  });

  it.skipIf(skip)('a permitted gate reads the holder; the answer opens with its key only and matches the face binding; every read is logged', async () => {
    const { face } = await issue(HOLDERS[1]);
    const req = request(gate, face);
    const a = await bo.realName.read(await client(gate), req);
    expect(a.readsLeft).toBe(2);
    const opened = openHolderAnswer(gate.decrypter, a.sealed);
    expect(checkHolderAnswer(opened, face, req.challenge)).toEqual(HOLDERS[1]);
    expect(() => openHolderAnswer(stranger.decrypter, a.sealed)).toThrow(/does not open|integrity|recipient/);
    const b = await bo.realName.read(await client(inspector), request(inspector, face));
    expect(b.readsLeft).toBe(1);
    expect(await store.holders.accessLog({ tid: face.tid })).toMatchObject([
      { clientId: 'gate-bjs', outcome: 'read', reason: 'read', readsLeft: 2 },
      { clientId: 'insp-1', outcome: 'read', reason: 'read', readsLeft: 1 },
    ]);
  });

  it.skipIf(skip)('refusals, each with its reason and logged: not a checking terminal, no permission, wrong / reused / off-clock TOTP, wrong reference', async () => {
    const { face } = await issue(HOLDERS[2]);
    await refusedWith(kiosk, request(kiosk, face), 'not_a_checking_terminal');
    await refusedWith(stranger, request(stranger, face), 'not_permitted');
    const wrong = request(gate, face);
    await refusedWith(gate, { ...wrong, totp: { ...wrong.totp, code: wrong.totp.code === '000000' ? '000001' : '000000' } }, 'totp_invalid');
    const ok = request(gate, face);
    await bo.realName.read(await client(gate), ok);
    await refusedWith(gate, { ...ok, challenge: newHolderRef() }, 'totp_reused');
    const p = gate.totp.parameters;
    const far = Math.floor(now / p.period) + 5;
    await refusedWith(gate, request(gate, face, { step: far }), 'totp_clock');
    lastStep.set(gate.client.clientId, Math.floor(now / p.period) - 1);
    await refusedWith(gate, request(gate, face, { holderRef: newHolderRef() }), 'wrong_reference');
    // None of these spent a read.
    expect((await store.holders.ticket('CR', face.tid))!.readsUsed).toBe(1);
  });

  it.skipIf(skip)('the N+1-th read is refused (reads_exhausted): the N-th destroys the record; N is per ticket kind', async () => {
    await store.holders.setReadLimit(4, 2);
    const { face } = await issue(HOLDERS[0], { kind: 4 });
    await store.holders.grant('gate-bjs', { station: 'BJS', kind: 4 });
    expect((await store.holders.ticket('CR', face.tid))!.readsMax).toBe(2);
    now += 30;
    expect((await bo.realName.read(await client(gate), request(gate, face))).readsLeft).toBe(1);
    now += 30;
    expect((await bo.realName.read(await client(gate), request(gate, face))).readsLeft).toBe(0);
    expect(await store.holders.record('CR', face.tid)).toBeUndefined();
    expect(await store.holders.ticket('CR', face.tid)).toMatchObject({ state: 'destroyed', destroyedReason: 'reads_exhausted', readsUsed: 2 });
    now += 30;
    await refusedWith(gate, request(gate, face), 'reads_exhausted');
    expect((await store.holders.accessLog({ tid: face.tid })).map((e) => e.reason)).toEqual(['read', 'read_last', 'reads_exhausted']);
  });

  it.skipIf(skip)('concurrent reads of one ticket by several terminals never exceed its limit', async () => {
    const { face } = await issue(HOLDERS[1]);
    const extra: TestTerminal[] = [];
    for (let i = 1; i <= 4; i++) {
      const t = testTerminal('rsa', `gate-c${i}`, 'gate', { station: 'BJS' });
      await bo.realName.registerTerminal(t.client, t.totp);
      await store.holders.grant(t.client.clientId, { station: 'BJS' });
      extra.push(t);
    }
    const terminals = [gate, inspector, ...extra];
    const results = await Promise.allSettled(terminals.map(async (t) => bo.realName.read(await client(t), request(t, face))));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(3);
    expect(refused.map((r) => (r.reason as HolderRefusedError).reason).sort()).toEqual(['reads_exhausted', 'reads_exhausted', 'reads_exhausted']);
    expect((ok as PromiseFulfilledResult<{ readsLeft: number }>[]).map((r) => r.value.readsLeft).sort()).toEqual([0, 1, 2]);
  });

  it.skipIf(skip)('a read after expiry is refused (expired) and the record is destroyed then, whoever asked', async () => {
    const { face } = await issue(HOLDERS[2], { validUntil: now + 3600 });
    now += 3600;
    await refusedWith(gate, request(gate, face), 'expired');
    expect(await store.holders.record('CR', face.tid)).toBeUndefined();
    expect(await store.holders.ticket('CR', face.tid)).toMatchObject({ state: 'destroyed', destroyedReason: 'expired', readsUsed: 0 });
    now += 30;
    await refusedWith(inspector, request(inspector, face), 'expired');
  });

  it.skipIf(skip)('deleted on the card, cancelled before loading, used up at the exit: the record is destroyed each time', async () => {
    // Deleted: the card's deletion receipt closes the ticket.
    const del = await issue(HOLDERS[0]);
    const loaded = await del.issuing.load(del.ticket.sealed);
    await bo.markLoaded(loaded.tid, loaded.sequenceNumber);
    const g = world.checkingTerminal(del.session);
    const receipt = await g.deleteTicket(await g.verifyTicket({ tid: del.face.tid }, { verificationCode: false }));
    await bo.recordDeletion({ encoded: receipt.encoded }, 'test');
    expect(await store.holders.ticket('CR', del.face.tid)).toMatchObject({ state: 'destroyed', destroyedReason: 'deleted' });
    now += 30;
    await refusedWith(gate, request(gate, del.face), 'ticket_closed');
    // Cancelled before it reached a card.
    const can = await issue(HOLDERS[1]);
    await bo.cancel(can.face.tid, { source: 'test' });
    expect(await store.holders.ticket('CR', can.face.tid)).toMatchObject({ state: 'destroyed', destroyedReason: 'cancelled' });
    // Used up: entry then exit, the receipts handed in.
    const use = await issue(HOLDERS[2]);
    const l2 = await use.issuing.load(use.ticket.sealed);
    await bo.markLoaded(l2.tid, l2.sequenceNumber);
    world.now = now;
    const entry = world.checkingTerminal(use.session, { station: 'BJS' });
    const r1 = await entry.recordUsage(await entry.verifyTicket({ tid: use.face.tid }), 'ENTRY');
    await bo.recordReceipt({ encoded: r1.encoded }, 'test');
    expect((await store.holders.ticket('CR', use.face.tid))!.state).toBe('held');
    const exit = world.checkingTerminal(use.session, { station: 'SHH' });
    const r2 = await exit.recordUsage(await exit.verifyTicket({ tid: use.face.tid }), 'EXIT');
    await bo.recordReceipt({ encoded: r2.encoded }, 'test');
    expect(await store.holders.ticket('CR', use.face.tid)).toMatchObject({ state: 'destroyed', destroyedReason: 'used_up' });
    expect(await store.holders.record('CR', use.face.tid)).toBeUndefined();
  });

  it.skipIf(skip)('after expiry the sweep destroys the record and rewrites the table: its bytes are no longer in the database files', async () => {
    const { face } = await issue(HOLDERS[0], { validUntil: now + 7200 });
    const keep = await issue(HOLDERS[1], { validUntil: now + 30 * DAY });
    const row = (await store.holders.record('CR', face.tid))!;
    const kept = (await store.holders.record('CR', keep.face.tid))!;
    // Positive control: before destruction the sealed record and its wrapped data key are in the files.
    const before = await relationFiles(store.db, 'holder_records');
    expect(before.bytes.includes(Buffer.from(row.sealed.subarray(0, 40)))).toBe(true);
    expect(before.bytes.includes(Buffer.from(row.wrappedKey))).toBe(true);
    now += 7200;
    const swept = await bo.realName.sweep();
    expect(swept.destroyed).toContainEqual({ operator: 'CR', tid: face.tid });
    expect(swept.vacuumed).toBe(true);
    // SQL: gone. Files: neither the sealed record nor its data key, in the table's new file; the old file is gone.
    expect((await store.db.query('SELECT 1 FROM holder_records WHERE tid = $1', [face.tid])).rowCount).toBe(0);
    const after = await relationFiles(store.db, 'holder_records');
    expect(after.bytes.includes(Buffer.from(row.sealed.subarray(0, 40)))).toBe(false);
    expect(after.bytes.includes(Buffer.from(row.wrappedKey))).toBe(false);
    for (const p of before.paths.filter((x) => !after.paths.includes(x))) expect(await fileHasBytes(store.db, p)).toBe(false);
    // The live record next to it is still there and still readable.
    expect(after.bytes.includes(Buffer.from(kept.sealed.subarray(0, 40)))).toBe(true);
    now += 30;
    expect((await bo.realName.read(await client(gate), request(gate, keep.face))).readsLeft).toBe(2);
    // A second sweep with nothing destroyed does not rewrite the table again.
    expect((await bo.realName.sweep()).vacuumed).toBe(false);
  });

  it.skipIf(skip)('a record moved to another ticket\'s row does not open there (record_unreadable, logged)', async () => {
    const a = await issue(HOLDERS[0]);
    const b = await issue(HOLDERS[1]);
    const ra = (await store.holders.record('CR', a.face.tid))!;
    await store.db.query('UPDATE holder_records SET wrapped_key = $2, sealed = $3 WHERE tid = $1', [b.face.tid, ra.wrappedKey, ra.sealed]);
    now += 30;
    await refusedWith(gate, request(gate, b.face), 'record_unreadable');
    // A master key rotation reports it and leaves it under the old key; the operator destroys what nobody can read.
    vault.rotate();
    const r = await bo.realName.rewrapAll();
    expect(r.unreadable).toEqual([{ operator: 'CR', tid: b.face.tid }]);
    expect(r.inUse).toHaveLength(2);
    await store.transaction((tx) => store.holders.destroy('CR', b.face.tid, 'cancelled', new Date(), tx));
  });

  it.skipIf(skip)('a record swapped to another ticket by someone holding the master key fails the terminal\'s binding check', async () => {
    const a = await issue(HOLDERS[0]);
    const b = await issue(HOLDERS[2]);
    // The insider re-seals A's record (salt and holder) where B's should be: it decrypts at the service...
    const plainA = (bo.realName as unknown as { openRecord(r: unknown, ref: Uint8Array): { salt: Uint8Array; holder: HolderRecord } }).openRecord((await store.holders.record('CR', a.face.tid))!, a.face.holderRef!);
    await store.transaction(async (tx) => {
      await store.holders.destroy('CR', b.face.tid, 'cancelled', new Date(), tx);
      await tx.query('DELETE FROM realname_tickets WHERE tid = $1', [b.face.tid]);
      await bo.realName.recordIssued(b.face, plainA.salt, plainA.holder, tx);
    });
    now += 30;
    const req = request(gate, b.face);
    const answer = openHolderAnswer(gate.decrypter, (await bo.realName.read(await client(gate), req)).sealed);
    // ...but the terminal recomputes 96 of B's face from it and refuses.
    expect(() => checkHolderAnswer(answer, b.face, req.challenge)).toThrow(HolderBindingError);
  });

  it.skipIf(skip)('the same request again gives the same ticket only with the same holder', async () => {
    const { credentials } = await world.newCard();
    const request = { serviceDate: today(), origin: 'BJS', kind: 1, validFrom: now - 60, validUntil: now + DAY };
    const first = await bo.issue({ request, card: credentials, holder: HOLDERS[0], requestKey: 'line-7' });
    const again = await bo.issue({ request, card: credentials, holder: { ...HOLDERS[0], name: ' Li Wei ' }, requestKey: 'line-7' });
    expect(again).toMatchObject({ status: 'existing', ticket: { tid: first.ticket.tid } });
    await expect(bo.issue({ request, card: credentials, holder: HOLDERS[1], requestKey: 'line-7' })).rejects.toThrow(StoreConflictError);
    await expect(bo.issue({ request, card: credentials, requestKey: 'line-7' })).rejects.toThrow(/issued with a holder record/);
    await expect(bo.issue({ request: { ...request, passenger: 'Li Wei' }, card: credentials, holder: HOLDERS[0] })).rejects.toThrow(/carries no passenger name/);
  });

  it.skipIf(skip)('a real-name TID withdrawn from a full card is issued again (same holder, then another): each issuance its own record; the withdrawn one stays destroyed', async () => {
    const tid = 'CR-RN-RE-1';
    const line = { serviceDate: today(), tid, origin: 'BJS', destination: 'SHH', kind: 1, validFrom: now - 60, validUntil: now + DAY };
    const card = async () => {
      const c = await world.newCard();
      return c.credentials;
    };
    const [a, b, c] = [await card(), await card(), await card()];
    const held = async (face: TicketFace, holder: HolderRecord, t: TestTerminal = gate) => {
      now += 30;
      const req = request(t, face);
      const answer = await bo.realName.read(await client(t), req);
      expect(checkHolderAnswer(openHolderAnswer(t.decrypter, answer.sealed), face, req.challenge)).toEqual(holder);
      return answer;
    };

    // Issuance 1 to card A, withdrawn (the card was full): its record destroyed, reason cancelled.
    const first = await bo.issue({ request: line, card: a, holder: HOLDERS[0] });
    expect(first).toMatchObject({ status: 'new', ticket: { issuance: 1 } });
    const face1 = decodeTicketFace(first.ticket.face);
    await bo.withdrawUnloaded([tid]);
    expect(await store.holders.ticket('CR', tid)).toMatchObject({ issuance: 1, state: 'destroyed', destroyedReason: 'cancelled' });
    expect(await store.holders.record('CR', tid)).toBeUndefined();

    // Issuance 2, same holder, card B: a new reference and binding, a held record the gate reads.
    const second = await bo.issue({ request: line, card: b, holder: HOLDERS[0] });
    expect(second).toMatchObject({ status: 'new', ticket: { tid, issuance: 2, cardSerial: hex(b.serial) }, bill: { kind: 'sale', issuance: 2 } });
    const face2 = decodeTicketFace(second.ticket.face);
    expect(hex(face2.holderRef!)).not.toBe(hex(face1.holderRef!));
    expect(await store.holders.ticket('CR', tid)).toMatchObject({ issuance: 2, state: 'held', readsUsed: 0, readsMax: 3, holderRef: face2.holderRef });
    expect(await store.holders.record('CR', tid)).toMatchObject({ issuance: 2 });
    expect((await held(face2, HOLDERS[0])).readsLeft).toBe(2);
    // The withdrawn issuance's reference names no record; its row still says it was destroyed, and why.
    now += 30;
    await refusedWith(gate, request(gate, face1), 'wrong_reference');
    expect(await store.holders.issuances('CR', tid)).toMatchObject([
      { issuance: 1, state: 'destroyed', destroyedReason: 'cancelled', holderRef: face1.holderRef },
      { issuance: 2, state: 'held', readsUsed: 1 },
    ]);
    // The same request again on card B is this issuance (same holder only).
    expect(await bo.issue({ request: line, card: b, holder: HOLDERS[0] })).toMatchObject({ status: 'existing', ticket: { issuance: 2 } });
    const other = await bo.issue({ request: line, card: b, holder: HOLDERS[1] }).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(StoreConflictError);
    expect(other).toMatchObject({ reason: 'request_mismatch' });

    // Withdrawn again, issuance 3 to card C for another holder: that holder is read, not the first.
    await bo.withdrawUnloaded([tid]);
    const third = await bo.issue({ request: line, card: c, holder: HOLDERS[1] });
    expect(third).toMatchObject({ status: 'new', ticket: { issuance: 3, cardSerial: hex(c.serial) } });
    const face3 = decodeTicketFace(third.ticket.face);
    expect((await held(face3, HOLDERS[1], inspector)).readsLeft).toBe(2);
    expect(await store.holders.issuances('CR', tid)).toMatchObject([
      { issuance: 1, state: 'destroyed', destroyedReason: 'cancelled' },
      { issuance: 2, state: 'destroyed', destroyedReason: 'cancelled', readsUsed: 1 },
      { issuance: 3, state: 'held', readsUsed: 1 },
    ]);
    expect((await store.db.query('SELECT issuance FROM holder_records WHERE tid = $1', [tid])).rows.map((r) => Number(r.issuance))).toEqual([3]);
    // The access log names the issuance each entry is about: the withdrawn reference's refusal is issuance 1's, a
    // reference no issuance had is logged without one, and one issuance's entries can be asked for alone.
    now += 30;
    await refusedWith(gate, request(gate, face3, { holderRef: newHolderRef() }), 'wrong_reference');
    expect((await store.holders.accessLog({ tid })).map((e) => [e.issuance, e.outcome, e.reason])).toEqual([
      [2, 'read', 'read'],
      [1, 'refused', 'wrong_reference'],
      [3, 'read', 'read'],
      [undefined, 'refused', 'wrong_reference'],
    ]);
    expect((await store.holders.accessLog({ tid, issuance: 1 })).map((e) => [e.issuance, e.reason])).toEqual([[1, 'wrong_reference']]);

    // Issuance 4 without a holder: not a real-name ticket; a request with a holder does not get it.
    await bo.withdrawUnloaded([tid]);
    expect(await bo.issue({ request: line, card: a })).toMatchObject({ status: 'new', ticket: { issuance: 4 } });
    expect(await store.holders.ticket('CR', tid)).toBeUndefined();
    const mixed = await bo.issue({ request: line, card: a, holder: HOLDERS[0] }).catch((e: unknown) => e);
    expect(mixed).toBeInstanceOf(StoreConflictError);
    expect(mixed).toMatchObject({ reason: 'request_mismatch' });
    // Still, at most one held record per TID, whatever writes the table (the database refuses a second).
    const dup = await store.db.query(`UPDATE realname_tickets SET state = 'held', destroyed_at = NULL, destroyed_reason = NULL WHERE tid = $1`, [tid]).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(DatabaseError);
    expect(dup).toMatchObject({ code: '23505' });
  });

  it.skipIf(skip)('master key rotation re-seals every data key and TOTP secret; copies sealed under the old key no longer open', async () => {
    const { face } = await issue(HOLDERS[1]);
    const old = vault.current().id;
    const before = (await store.holders.record('CR', face.tid))!;
    vault.rotate();
    const r = await bo.realName.rewrapAll(2);
    expect(r.records).toBeGreaterThanOrEqual(1);
    expect(r.totps).toBe(Number((await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM terminal_totp')).rows[0].n));
    expect(r.unreadable).toEqual([]);
    expect(r.inUse).toEqual([vault.current().id]);
    vault.forget(old);
    now += 30;
    const req = request(gate, face);
    expect(checkHolderAnswer(openHolderAnswer(gate.decrypter, (await bo.realName.read(await client(gate), req)).sealed), face, req.challenge)).toEqual(HOLDERS[1]);
    // A copy of the row from before (what WAL, a backup or a replica keeps) names a key nobody holds any more.
    expect(before.masterKeyId).toBe(old);
    expect(vault.key(before.masterKeyId)).toBeUndefined();
    const asBefore = (bo.realName as unknown as { openRecord(r: unknown, ref: Uint8Array): unknown }).openRecord.bind(bo.realName);
    expect(() => asBefore(before, face.holderRef!)).toThrow(/master key/);
    expect(hex(fromHex(hex(before.wrappedKey)))).not.toBe(hex((await store.holders.record('CR', face.tid))!.wrappedKey));
  });
});
