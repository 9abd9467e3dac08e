// Back-office verification of gate mode sym receipts (sdk/roles/sym-receipts.ts) against real taps, and
// sym-only gates configured without pki keys, for every suite.

import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckingTerminal, PkiNotConfiguredError, type Receipt } from '../host/checking.js';
import type { World, WorldCard } from '../testing/world.js';
import { CryptoError } from '../sdk/errors.js';
import { USAGE_EVENT, type SuiteName } from '../sdk/spec.js';
import { SymKeyCache, symTransactionFromJson, symTransactionToJson, verifySymReceipt, type SymTransaction } from '../sdk/roles/sym-receipts.js';
import { parseReceipt } from '../sdk/receipt.js';
import { SUITES, today, worldFor } from './helpers/world.js';

describe.each(SUITES)('%s suite: sym receipts at the back office', (suite: SuiteName) => {
  let w: World;
  let c: WorldCard;
  let other: WorldCard;
  let usage: Receipt;
  let deletion: Receipt;

  const flip = (b: Uint8Array, i: number) => {
    const x = b.slice();
    x[i] ^= 0x01;
    return x;
  };

  beforeAll(async () => {
    w = worldFor(suite);
    [c, other] = [await w.newCard(), await w.newCard()];
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'R1', origin: 'BJS', destination: 'SHH' });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    const gate = w.checkingTerminal(c.session, { mode: 'sym', gateId: 'G07', station: 'BJS' });
    await gate.select();
    usage = await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }), 'ENTRY');
    deletion = await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }));
  });

  it('the gate logs the session with every sym receipt, and a valid receipt verifies', () => {
    for (const [r, name] of [[usage, 'WRITE USAGE'], [deletion, 'DELETE']] as const) {
      expect(r.sym?.command).toBe(name);
      const ok = verifySymReceipt(w.masterKey, c.credentials.serial, r.encoded, r.sym!);
      expect(ok).toMatchObject({ command: name, tid: r.tid, gateId: 'G07', station: 'BJS', time: w.now });
      expect(ok.receipt.counter).toBe(r.counter);
    }
    expect(verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, usage.sym!).event).toBe(USAGE_EVENT.ENTRY);
  });

  it('survives the JSON the CLI prints', () => {
    const tx = symTransactionFromJson(JSON.parse(JSON.stringify(symTransactionToJson(usage.sym!))));
    expect(verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, tx).tid).toBe(usage.tid);
  });

  it('any altered byte of the receipt fails', () => {
    for (let i = 0; i < usage.encoded.length; i++) {
      expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, flip(usage.encoded, i), usage.sym!), `byte ${i}`).toThrow(CryptoError);
    }
  });

  it('any altered byte of the logged transaction fails', () => {
    const tx = usage.sym!;
    const fields = ['keyId', 'terminalChallenge', 'cardChallenge', 'viewMac', 'macedCommand'] as const;
    for (const f of fields) {
      for (let i = 0; i < tx[f].length; i++) {
        const bad: SymTransaction = { ...tx, [f]: flip(tx[f], i) };
        expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, bad), `${f}[${i}]`).toThrow(CryptoError);
      }
    }
    // A receipt for a DELETE presented as the answer to a WRITE USAGE, or the other way round.
    expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, { ...tx, command: 'DELETE' })).toThrow(CryptoError);
    expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, deletion.encoded, tx)).toThrow(CryptoError);
  });

  it("another card's serial fails, and so does another master key", () => {
    expect(() => verifySymReceipt(w.masterKey, other.credentials.serial, usage.encoded, usage.sym!)).toThrow(/from card/);
    const impostor = { operator: w.operator, key: new Uint8Array(randomBytes(16)) };
    expect(() => verifySymReceipt(impostor, c.credentials.serial, usage.encoded, usage.sym!)).toThrow(CryptoError);
    // Even with the key id forged to match, the MACs do not.
    const forgedId = { ...usage.sym!, keyId: new Uint8Array(8) };
    expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, forgedId)).toThrow(/master key/);
  });

  it('with a key cache (the back office ingesting journals): the same verdicts, and a cached card key never answers for another card, operator or master key', () => {
    const keys = new SymKeyCache();
    for (let round = 0; round < 2; round++) {
      // Round 2 runs on what round 1 derived: every refusal must still be a refusal.
      expect(verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, usage.sym!, { keys }).tid, `round ${round}`).toBe(usage.tid);
      for (const i of [0, 9, usage.encoded.length - 1]) expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, flip(usage.encoded, i), usage.sym!, { keys }), `round ${round} byte ${i}`).toThrow(CryptoError);
      expect(() => verifySymReceipt(w.masterKey, other.credentials.serial, usage.encoded, usage.sym!, { keys })).toThrow(/from card/);
      const impostor = { operator: w.operator, key: new Uint8Array(randomBytes(16)) };
      expect(() => verifySymReceipt(impostor, c.credentials.serial, usage.encoded, { ...usage.sym!, keyId: keys.keyId(impostor) }, { keys })).toThrow(/receipt MAC|not the one of this session/);
    }
    expect(keys.cardKey(w.masterKey, c.credentials.serial)).toEqual(keys.cardKey({ ...w.masterKey }, c.credentials.serial));
    expect(keys.cardKey(w.masterKey, c.credentials.serial)).not.toEqual(keys.cardKey(w.masterKey, other.credentials.serial));
    expect(keys.cardKey(w.masterKey, c.credentials.serial)).not.toEqual(keys.cardKey({ operator: 'ZZ', key: w.masterKey.key }, c.credentials.serial));
  });

  it('a parsed receipt handed along is used only for the bytes it was parsed from', () => {
    const parsed = parseReceipt(usage.encoded);
    expect(verifySymReceipt(w.masterKey, c.credentials.serial, usage.encoded, usage.sym!, { receipt: parsed }).receipt).toBe(parsed);
    // Bytes altered after parsing: the handed receipt is ignored, the bytes are parsed and refused.
    expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, flip(usage.encoded, 20), usage.sym!, { receipt: parsed })).toThrow(CryptoError);
  });

  it('a pki receipt has no sym record and is refused', async () => {
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'R2' });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    const gate = w.checkingTerminal(c.session);
    await gate.select();
    const r = await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }), 'ENTRY');
    expect(r.sym).toBeUndefined();
    expect(() => verifySymReceipt(w.masterKey, c.credentials.serial, r.encoded, usage.sym!)).toThrow(CryptoError);
  });
});

describe.each(SUITES)('%s suite: a sym-only gate without pki keys', (suite: SuiteName) => {
  it('passes a card and checks TF_V; pki operations fail with a typed error', async () => {
    const w = worldFor(suite);
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'S1', origin: 'BJS' });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    const gate = new CheckingTerminal(c.session, { mode: 'sym', masterKeys: [w.masterKey], authorities: [w.authority.publicKey], suite, gateId: 'G1', station: 'BJS', clock: () => w.now });
    const tap = await gate.passGate('entry', { train: 'S1', auditVerificationCode: true });
    expect(tap.decision.pass).toBe(true);
    expect(tap.ticket?.verificationCode).toBeDefined();
    expect(tap.receipt?.sym).toBeDefined();
    await expect(gate.readTickets()).rejects.toBeInstanceOf(PkiNotConfiguredError);
    await expect(gate.cardSigningKey(c.credentials.serial)).rejects.toThrow(/card trust/);
    expect(() => new CheckingTerminal(c.session, { authorities: [], gateId: 'G1', station: 'BJS' })).toThrow(PkiNotConfiguredError);
    // Without a suite it cannot check TF_V, and says so rather than guessing the algorithm.
    const bare = new CheckingTerminal(c.session, { mode: 'sym', masterKeys: [w.masterKey], authorities: [w.authority.publicKey], gateId: 'G1', station: 'BJS' });
    await bare.select();
    await expect(bare.verifyTicket({ tid: face.tid })).rejects.toBeInstanceOf(PkiNotConfiguredError);
  });
});
