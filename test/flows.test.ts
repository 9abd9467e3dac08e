// End-to-end patent flows on the emulator, for every suite: issue (611-614), read (621-622),
// verify (631-635), usage (641-643), delete (651-653), rebooking, each with its refusals.

import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { concat } from '../sdk/bytes.js';
import { seal } from '../sdk/crypto/envelope.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { CardMisbehavedError, CardStatusError, CryptoError } from '../sdk/errors.js';
import { LIMITS, SW, USAGE_EVENT, type SuiteName } from '../sdk/spec.js';
import { encodeVerificationCode } from '../sdk/ticket.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import type { World, WorldCard } from '../testing/world.js';
import { suiteWorldBuilders } from '../testing/world.js';
import { CapturingTransport } from './helpers/capture.js';
import { expectAbsent, expectRawRefusal, expectRefused, SUITES, today, worldFor, walkUsageStates } from './helpers/world.js';

describe.each(SUITES)('%s suite: patent flows', (suite: SuiteName) => {
  let w: World;
  let c: WorldCard;
  let ticketNo = 0;
  const newFace = (over: Record<string, unknown> = {}) =>
    w.ticketServer.createTicket({ serviceDate: today(w), train: 'G1', origin: 'BJS', destination: 'SHH', seat: `${++ticketNo}A`, ...over });
  const issue = async (over: Record<string, unknown> = {}, card = c) => {
    const face = newFace(over);
    const { sealed } = w.authority.issue(face, card.credentials);
    await card.issuing.load(sealed);
    return { face, sealed };
  };

  beforeEach(async () => {
    w = worldFor(suite);
    c = await w.newCard();
  });

  describe('issue (611-614)', () => {
    it('loads a sealed ticket and reports it in the capacity', async () => {
      const before = await c.issuing.capacity();
      await issue();
      const after = await c.issuing.capacity();
      expect(after.tickets).toBe(before.tickets + 1);
      expect(after.freeBytes).toBeLessThan(before.freeBytes);
    });

    it('refuses on card B a ticket sealed to card A (TICKET_NOT_FOR_THIS_CARD)', async () => {
      const other = await w.newCard();
      const { sealed } = w.authority.issue(newFace(), c.credentials);
      await expectRefused(other.card, other.issuing.load(sealed), 'TICKET_NOT_FOR_THIS_CARD');
    });

    it('refuses a forged TF_V (TICKET_SIGNATURE_INVALID)', async () => {
      const signed = w.authority.sign(newFace(), c.credentials);
      const sig = signed.verificationCode.signature.slice();
      sig[sig.length >> 1] ^= 0x01;
      const forged = encodeVerificationCode({ ...signed.verificationCode, signature: sig });
      const cardKey = w.keys.cardTrust.encryptionKey(c.credentials);
      const sealed = seal(getSuite(suite), cardKey, c.credentials.serial, concat(signed.faceEncoded, forged));
      await expectRefused(c.card, c.issuing.load(sealed), 'TICKET_SIGNATURE_INVALID');
    });

    it('refuses a ticket face altered after signing (TICKET_SIGNATURE_INVALID)', async () => {
      const signed = w.authority.sign(newFace(), c.credentials);
      const altered = w.authority.sign({ ...signed.face, seat: '99Z' }, c.credentials).faceEncoded;
      const cardKey = w.keys.cardTrust.encryptionKey(c.credentials);
      const sealed = seal(getSuite(suite), cardKey, c.credentials.serial, concat(altered, signed.verificationCodeEncoded));
      await expectRefused(c.card, c.issuing.load(sealed), 'TICKET_SIGNATURE_INVALID');
    });

    it('refuses a ticket signed by an authority key the card does not hold (REFERENCED_DATA_NOT_FOUND)', async () => {
      const rogue = new AuthenticationServer(suiteWorldBuilders[suite]!().authorityKey, w.keys.cardTrust);
      const { sealed } = rogue.issue(newFace(), c.credentials);
      await expectRefused(c.card, c.issuing.load(sealed), 'REFERENCED_DATA_NOT_FOUND');
    });

    it('refuses an authority key scoped to another operator (REFERENCED_DATA_NOT_FOUND)', async () => {
      const scoped = await w.newCard({ authorities: [w.authorityGrant(['METRO'])] });
      const { sealed } = w.authority.issue(newFace(), scoped.credentials);
      await expectRefused(scoped.card, scoped.issuing.load(sealed), 'REFERENCED_DATA_NOT_FOUND');
    });

    it('refuses a duplicate TID (ALREADY_EXISTS), even in a fresh envelope', async () => {
      const { face } = await issue();
      const again = w.authority.issue(face, c.credentials).sealed;
      await expectRefused(c.card, c.issuing.load(again), 'ALREADY_EXISTS');
    });

    it('answers NOT_ENOUGH_MEMORY when the NVM is full, and keeps the tickets it has', async () => {
      const small = await w.newCard({ capacity: c.card.usedBytes + 1200 });
      let loaded = 0;
      let refusal: CardStatusError | undefined;
      for (let i = 0; i < 10 && !refusal; i++) {
        const { sealed } = w.authority.issue(newFace(), small.credentials);
        try {
          await small.issuing.load(sealed);
          loaded++;
        } catch (e) {
          refusal = e as CardStatusError;
        }
      }
      expect(loaded).toBeGreaterThan(0);
      expect(refusal?.swName).toBe('NOT_ENOUGH_MEMORY');
      const { sealed } = w.authority.issue(newFace(), small.credentials);
      await expectRefused(small.card, small.issuing.load(sealed), 'NOT_ENOUGH_MEMORY');
      expect((await small.issuing.capacity()).tickets).toBe(loaded);
    });

    it('any bit flipped anywhere in a first ciphertext is refused and the card is unchanged', async () => {
      const { sealed } = w.authority.issue(newFace(), c.credentials);
      const allowed = [SW.INCORRECT_DATA, SW.TICKET_NOT_FOR_THIS_CARD, SW.INCORRECT_SM_DATA_OBJECTS];
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: sealed.length * 8 - 1 }), async (bit) => {
          const bad = sealed.slice();
          bad[bit >> 3] ^= 1 << (bit & 7);
          const before = c.card.image.slice();
          const r = await c.session.send('LOAD', { data: bad, accept: allowed });
          expect(allowed).toContain(r.sw);
          expect(Buffer.from(c.card.image).equals(Buffer.from(before))).toBe(true);
        }),
        { numRuns: 60 },
      );
      await c.issuing.load(sealed); // the untouched original still loads
    });

    it('a sealed ticket is a self-contained blob: sealing and loading are separate steps', async () => {
      const { sealed } = w.authority.issue(newFace(), c.credentials);
      const copy = Uint8Array.from(Buffer.from(Buffer.from(sealed).toString('base64'), 'base64'));
      const loaded = await c.issuing.load(copy);
      expect(loaded.sequenceNumber).toBeGreaterThan(0);
    });
  });

  describe('read (621-622)', () => {
    it('reads every ticket for a date or later, by repeating READ, in travel order', async () => {
      const d = today(w);
      await issue({ serviceDate: d, train: 'G2', departure: 600 });
      await issue({ serviceDate: d, train: 'G1', departure: 480 });
      const gate = w.checkingTerminal(c.session);
      const all = await gate.readTickets({ date: d });
      expect(all.map((t) => t.face.train)).toEqual(['G1', 'G2']);
      expect((await gate.readTickets({ date: d, train: 'G2' })).map((t) => t.face.train)).toEqual(['G2']);
      expect(await gate.readTickets({ date: d + 10000 })).toEqual([]);
    });

    it('READ next without READ first is refused (CONDITIONS_NOT_SATISFIED)', async () => {
      await issue();
      const gate = w.checkingTerminal(c.session);
      await gate.readTickets();
      const r = await c.session.send('READ', { p1: 0x01, data: concat(new Uint8Array([0xc1, 8]), w.keys.terminalKeys.keyId), accept: [SW.CONDITIONS_NOT_SATISFIED] });
      expect(r.sw).toBe(SW.CONDITIONS_NOT_SATISFIED);
    });

    it('a terminal whose key is not on the card reads nothing (SECURITY_STATUS_NOT_SATISFIED)', async () => {
      await issue();
      const stranger = w.checkingTerminal(c.session, { keys: suiteWorldBuilders[suite]!().terminalKeys });
      await expectRefused(c.card, stranger.readTickets(), 'SECURITY_STATUS_NOT_SATISFIED');
    });

    it('a terminal sees only the operators it is scoped to', async () => {
      const scoped = await w.newCard({ terminals: [w.terminalGrant(['METRO'])] });
      await issue({}, scoped);
      const gate = w.checkingTerminal(scoped.session);
      expect(await gate.readTickets()).toEqual([]);
    });
  });

  describe('verify (631-635)', () => {
    it('finds a ticket by TID and by date + train, with TF_V checked', async () => {
      const { face } = await issue({ train: 'D7' });
      const gate = w.checkingTerminal(c.session);
      const byTid = await gate.verifyTicket({ tid: face.tid });
      // Signed for this card: version 2, bound to its serial (94).
      expect(byTid.face).toEqual({ ...face, version: 2, card: c.credentials.serial });
      expect(byTid.verificationCode).toBeDefined();
      const byTrain = await gate.verifyTicket({ date: face.serviceDate, train: 'D7' });
      expect(byTrain.face.tid).toBe(face.tid);
      expect(byTrain.cardChallenge?.length).toBe(LIMITS.challengeLength);
    });

    it('the view says "no ticket" when the passenger bought no such e-ticket (TicketNotFoundError, not a status word)', async () => {
      await issue();
      const gate = w.checkingTerminal(c.session);
      await expectAbsent(c.card, gate.verifyTicket({ tid: 'NO-SUCH' }), 'not_found');
      await expectAbsent(c.card, gate.verifyTicket({ date: today(w), train: 'X9' }), 'not_found');
    });

    it('a second ciphertext altered on the way is rejected by the terminal', async () => {
      const { face } = await issue();
      const capture = new CapturingTransport(new EmulatorTransport(c.card));
      const session = new CardSession(capture);
      const gate = w.checkingTerminal(session);
      await gate.select();
      for (const pos of [20, 100, 300, -20, -3]) {
        capture.tamper = (cmd, resp) => {
          if (cmd[1] !== 0x54 || resp.length < 40) return undefined;
          const bad = resp.slice();
          bad[pos < 0 ? bad.length + pos : pos] ^= 0x40;
          return bad;
        };
        // A flipped byte of the sealed view fails its MAC (CryptoError) or, in its structure, is a malformed answer.
        const error = await gate.verifyTicket({ tid: face.tid }).catch((e: unknown) => e);
        expect(error instanceof CryptoError || error instanceof CardMisbehavedError, String(error)).toBe(true);
      }
      capture.tamper = undefined;
      await expect(gate.verifyTicket({ tid: face.tid })).resolves.toBeDefined();
    });

    it('a replayed VERIFY answer does not satisfy a new terminal challenge', async () => {
      const { face } = await issue();
      const capture = new CapturingTransport(new EmulatorTransport(c.card));
      const session = new CardSession(capture);
      const gate = w.checkingTerminal(session);
      await gate.select();
      // First meeting of this card: the gate learns its receipt key (a second VERIFY with the certificate); then one VERIFY per call.
      await gate.verifyTicket({ tid: face.tid });
      let recorded: Uint8Array | undefined;
      capture.tamper = (cmd, resp) => {
        if (cmd[1] !== 0x54) return undefined;
        if (!recorded) {
          recorded = resp;
          return undefined;
        }
        return recorded;
      };
      await gate.verifyTicket({ tid: face.tid });
      await expect(gate.verifyTicket({ tid: face.tid })).rejects.toBeInstanceOf(CryptoError);
    });
  });

  describe('usage (641-643)', () => {
    it('records entry, temporary exit, re-entry, punch, paper printed and exit with verified receipts', async () => {
      const { face } = await issue();
      const gate = w.checkingTerminal(c.session);
      await walkUsageStates(gate, face.tid);
    });

    it('a replayed WRITE USAGE does nothing (REFERENCE_DATA_NOT_USABLE)', async () => {
      const { face } = await issue();
      const capture = new CapturingTransport(new EmulatorTransport(c.card));
      const session = new CardSession(capture);
      const gate = w.checkingTerminal(session);
      await gate.select();
      await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }), 'ENTRY');
      const recorded = capture.last(0x56);
      await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }), 'TEMPORARY_EXIT');
      // replayed right after a fresh VERIFY (so a challenge is pending): still refused
      await gate.verifyTicket({ tid: face.tid });
      expectRawRefusal(c.card, recorded, SW.REFERENCE_DATA_NOT_USABLE);
      // replayed with no challenge pending
      expectRawRefusal(c.card, recorded, SW.REFERENCE_DATA_NOT_USABLE);
    });

    it('a stale counter is refused (COUNTER_MISMATCH)', async () => {
      const { face } = await issue();
      const gate = w.checkingTerminal(c.session);
      const stale = await gate.verifyTicket({ tid: face.tid });
      const fresh = await gate.verifyTicket({ tid: face.tid });
      await gate.recordUsage(fresh, 'PUNCH');
      const view = await gate.verifyTicket({ tid: face.tid });
      await expectRefused(c.card, gate.recordUsage({ ...view, usage: stale.usage }, 'ENTRY'), 'COUNTER_MISMATCH');
    });

    it('a command signed with another key under the installed key id is refused (COMMAND_SIGNATURE_INVALID)', async () => {
      const { face } = await issue();
      const other = suiteWorldBuilders[suite]!().terminalKeys;
      const mine = w.keys.terminalKeys;
      const impostor = Object.create(mine, { signature: { value: other.signature } });
      const gate = w.checkingTerminal(c.session, { keys: impostor });
      const view = await gate.verifyTicket({ tid: face.tid });
      await expectRefused(c.card, gate.recordUsage(view, 'ENTRY'), 'COMMAND_SIGNATURE_INVALID');
    });

    it('an unauthorised terminal key is refused (SECURITY_STATUS_NOT_SATISFIED)', async () => {
      const { face } = await issue();
      const gate = w.checkingTerminal(c.session);
      const view = await gate.verifyTicket({ tid: face.tid });
      const stranger = w.checkingTerminal(c.session, { keys: suiteWorldBuilders[suite]!().terminalKeys });
      await expectRefused(c.card, stranger.recordUsage(view, 'ENTRY'), 'SECURITY_STATUS_NOT_SATISFIED');
    });

    it('any bit flipped in a signed command (third ciphertext) is refused and the card is unchanged', async () => {
      const { face } = await issue();
      const capture = new CapturingTransport(new EmulatorTransport(c.card));
      const session = new CardSession(capture);
      const gate = w.checkingTerminal(session);
      await gate.select();
      const view = await gate.verifyTicket({ tid: face.tid });
      capture.tamper = (cmd) => (cmd[1] === 0x56 ? new Uint8Array([0x69, 0x00]) : undefined); // keep the card's answer away
      const signedApdu = await gate.recordUsage(view, 'ENTRY').then(
        () => undefined,
        () => capture.last(0x56),
      );
      capture.tamper = undefined;
      const original = signedApdu!;
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 7 * 8, max: original.length * 8 - 8 * 2 - 1 }), async (bit) => {
          const v = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
          // put the fresh challenge and view digest into the recorded command, then flip one bit
          const cmd = original.slice();
          const at = Buffer.from(cmd).indexOf(Buffer.from([0xc7, LIMITS.challengeLength]));
          cmd.set(v.cardChallenge!, at + 2);
          const digestAt = Buffer.from(cmd).indexOf(Buffer.from([0xdf, 0x21, 32]));
          cmd.set(v.viewDigest, digestAt + 3);
          cmd[bit >> 3] ^= 1 << (bit & 7);
          const before = c.card.image.slice();
          const r = c.card.transmit(cmd);
          const sw = (r[r.length - 2] << 8) | r[r.length - 1];
          expect(sw).not.toBe(SW.SUCCESS);
          expect(Buffer.from(c.card.image).equals(Buffer.from(before))).toBe(true);
        }),
        { numRuns: 40 },
      );
    });

    it('the card refuses an event its usage state does not allow (CONDITIONS_NOT_SATISFIED)', async () => {
      const { face } = await issue();
      const gate = w.checkingTerminal(c.session);
      await expectRefused(c.card, gate.verifyTicket({ tid: face.tid }).then((v) => gate.recordUsage(v, 'EXIT')), 'CONDITIONS_NOT_SATISFIED');
    });
  });

  describe('delete (651-653) and rebooking', () => {
    it('deletes with a card receipt; the ticket is then void and a replayed DELETE does nothing', async () => {
      const { face } = await issue();
      const capture = new CapturingTransport(new EmulatorTransport(c.card));
      const session = new CardSession(capture);
      const gate = w.checkingTerminal(session);
      await gate.select();
      const receipt = await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }));
      expect(receipt.event).toBe(USAGE_EVENT.DELETED);
      expect(receipt.tid).toBe(face.tid);
      const recorded = capture.last(0x58);
      await expectAbsent(c.card, gate.verifyTicket({ tid: face.tid }), 'void');
      expectRawRefusal(c.card, recorded, SW.REFERENCE_DATA_NOT_USABLE);
      expect((await c.issuing.capacity()).tombstones).toBe(1);
    });

    it('a LOAD replayed after its ticket was deleted yields no ticket (TICKET_REPLAYED)', async () => {
      const { face, sealed } = await issue();
      const gate = w.checkingTerminal(c.session);
      await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }));
      await expectRefused(c.card, c.issuing.load(sealed), 'TICKET_REPLAYED');
      await expectRefused(c.card, c.issuing.load(w.authority.issue(face, c.credentials).sealed), 'TICKET_REPLAYED');
    });

    it('after tombstone eviction, tickets issued before the evicted ones are still refused', async () => {
      const server = new TicketServer('EV', undefined, () => w.now);
      const evCard = await w.newCard();
      const old = server.createTicket({ serviceDate: today(w), issuedAt: w.now - 1000 });
      const oldSealed = w.authority.issue(old, evCard.credentials).sealed;
      const gate = w.checkingTerminal(evCard.session);
      for (let i = 0; i <= LIMITS.tombstoneSlots; i++) {
        const f = server.createTicket({ serviceDate: today(w), issuedAt: w.now - 500 + i });
        await evCard.issuing.load(w.authority.issue(f, evCard.credentials).sealed);
        await gate.deleteTicket(await gate.verifyTicket({ tid: f.tid }, { verificationCode: false }));
      }
      expect((await evCard.issuing.capacity()).tombstones).toBe(LIMITS.tombstoneSlots);
      await expectRefused(evCard.card, evCard.issuing.load(oldSealed), 'TICKET_REPLAYED');
      const fresh = server.createTicket({ serviceDate: today(w) });
      await evCard.issuing.load(w.authority.issue(fresh, evCard.credentials).sealed);
    });

    it('rebooking: the checking side deletes, the issuing side issues a new ticket', async () => {
      const { face } = await issue({ train: 'G1' });
      const gate = w.checkingTerminal(c.session);
      const receipt = await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }));
      expect(receipt.tid).toBe(face.tid);
      const { face: rebooked } = await issue({ train: 'G3' });
      const tickets = await gate.readTickets();
      expect(tickets.map((t) => t.face.tid)).toEqual([rebooked.tid]);
      await expectAbsent(c.card, gate.verifyTicket({ tid: face.tid }), 'void');
    });
  });

  describe('gate decisions', () => {
    it('passes in and out, and rejects with the reason', async () => {
      const d = today(w);
      await issue({ serviceDate: d, origin: 'BJS', destination: 'SHH' });
      const entry = w.checkingTerminal(c.session, { station: 'BJS' });
      expect((await entry.passGate('entry')).decision.pass).toBe(true);
      expect((await entry.passGate('entry')).decision.reason).toBe('already_inside');
      const exit = w.checkingTerminal(c.session, { station: 'SHH' });
      expect((await exit.passGate('exit')).decision.pass).toBe(true);
      expect((await exit.passGate('exit')).decision.reason).toBe('already_exited');
      const elsewhere = w.checkingTerminal(c.session, { station: 'XXX' });
      expect((await elsewhere.passGate('entry')).decision.reason).toBe('not_found');
    });

    it('rejects tickets outside their validity window', async () => {
      await issue({ origin: 'BJS', validFrom: w.now + 3600, validUntil: w.now + 7200 });
      const early = w.checkingTerminal(c.session, { station: 'BJS' });
      expect((await early.passGate('entry')).decision.reason).toBe('not_yet_valid');
      const other = await w.newCard();
      await issue({ origin: 'BJS', validFrom: w.now - 7200, validUntil: w.now - 3600 }, other);
      const late = w.checkingTerminal(other.session, { station: 'BJS' });
      expect((await late.passGate('entry')).decision.reason).toBe('expired');
    });

    it('rejects a card that holds no ticket for this service', async () => {
      const empty = await w.newCard();
      expect((await w.checkingTerminal(empty.session).passGate('entry')).decision.reason).toBe('not_found');
    });
  });

  it('a card session on another card instance opened from the same image sees the same tickets', async () => {
    await issue();
    const { EticketCard } = await import('../card/applet.js');
    const { MemoryBackend } = await import('../card/nvm.js');
    const backend = new MemoryBackend();
    backend.write('image', 0, c.card.image);
    const clone = EticketCard.open(backend);
    const issuing = w.issuingTerminal(new CardSession(new EmulatorTransport(clone)));
    expect((await issuing.capacity()).tickets).toBe(1);
  });
});
