// Gate mode sym end to end, for every suite: the usage, delete and gate tests of flows.test.ts with
// diversified AES keys and one session per tap, plus what only sym has (sessions, MACs, key scope).

import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import type { CheckingTerminal, TicketView } from '../host/checking.js';
import { CardMisbehavedError, CardStatusError, CryptoError, RelayError } from '../sdk/errors.js';
import { LIMITS, SW, T, USAGE_EVENT, type SuiteName } from '../sdk/spec.js';
import { diversify, masterKeyId } from '../sdk/crypto/symmetric.js';
import { concat, utf8 } from '../sdk/bytes.js';
import { tlv } from '../sdk/tlv.js';
import type { World, WorldCard } from '../testing/world.js';
import { CapturingTransport } from './helpers/capture.js';
import { expectAbsent, expectRawRefusal, expectRefused, SUITES, today, worldFor, walkUsageStates } from './helpers/world.js';

const VERIFY = 0x54;
const WRITE_USAGE = 0x56;
const DELETE = 0x58;

describe.each(SUITES)('%s suite, gate mode sym', (suite: SuiteName) => {
  let w: World;
  let c: WorldCard;
  let ticketNo = 0;
  const issue = async (over: Record<string, unknown> = {}, card = c) => {
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'G1', origin: 'BJS', destination: 'SHH', seat: `${++ticketNo}S`, ...over });
    await card.issuing.load(w.authority.issue(face, card.credentials).sealed);
    return face;
  };
  const gateOn = (session: CardSession, options: Parameters<World['checkingTerminal']>[1] = {}) => w.checkingTerminal(session, { mode: 'sym', ...options });
  const capturing = async (card = c) => {
    const capture = new CapturingTransport(new EmulatorTransport(card.card));
    const gate = gateOn(new CardSession(capture));
    await gate.select();
    return { capture, gate };
  };

  beforeEach(async () => {
    w = worldFor(suite);
    c = await w.newCard();
  });

  describe('verify', () => {
    it('opens a session: the view is encrypted and MAC\'d, TF_V only on request', async () => {
      const face = await issue();
      const gate = gateOn(c.session);
      const plain = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
      expect(plain.face).toEqual({ ...face, version: 2, card: c.credentials.serial });
      expect(plain.verificationCode).toBeUndefined();
      expect(plain.session?.operator).toBe(w.operator);
      const audited = await gate.verifyTicket({ tid: face.tid });
      expect(audited.verificationCode).toBeDefined();
    });

    it('the sym VERIFY answer carries neither the ticket face nor a 256-byte RSA block in clear', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      let answer: Uint8Array | undefined;
      capture.tamper = (cmd, resp) => {
        if (cmd[1] === VERIFY) answer = resp;
        return undefined;
      };
      await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
      expect(answer![0]).toBe(T.SESSION_VIEW);
      expect(Buffer.from(answer!).includes(Buffer.from(face.tid))).toBe(false);
      // B5 around a view padded to limits.viewLength: DF24 (19) + C7 (10) + 85 (4 + the cryptogram) + 8E (10) + B5 header (4), SW.
      expect(answer!.length).toBe(4 + 19 + 10 + 4 + (Math.floor(LIMITS.viewLength / 16) + 1) * 16 + 10 + 2);
    });

    it('a card without this operator\'s diversified key shows nothing (SECURITY_STATUS_NOT_SATISFIED)', async () => {
      const other = await w.newCard({ masterKeys: [{ operator: 'METRO', key: new Uint8Array(randomBytes(16)) }] });
      await issue({}, other);
      await expectRefused(other.card, gateOn(other.session).verifyTicket({ date: today(w) }), 'SECURITY_STATUS_NOT_SATISFIED');
    });

    it('a key for another operator does not show this operator\'s tickets (the view says not found)', async () => {
      const metro = { operator: 'METRO', key: new Uint8Array(randomBytes(16)) };
      const both = await w.newCard({ masterKeys: [w.masterKey, metro] });
      const face = await issue({}, both);
      const gate = gateOn(both.session, { masterKeys: [metro] });
      await expectAbsent(both.card, gate.verifyTicket({ tid: face.tid }), 'not_found');
    });

    it('a gate with another master key under the same key id rejects the card\'s answer', async () => {
      const face = await issue();
      const impostor = gateOn(c.session, { masterKeys: [{ operator: w.operator, key: new Uint8Array(randomBytes(16)) }] });
      // The impostor names its own key id, which the card does not hold.
      await expectRefused(c.card, impostor.verifyTicket({ tid: face.tid }), 'SECURITY_STATUS_NOT_SATISFIED');
      // Forge the id: the card answers under K_card, which the impostor cannot derive.
      (impostor as unknown as { masterKeyIds: Map<string, Uint8Array> }).masterKeyIds.set(w.operator, masterKeyId(w.masterKey.key, w.operator));
      await expect(impostor.verifyTicket({ tid: face.tid })).rejects.toBeInstanceOf(CryptoError);
    });

    it('any bit flipped in the sym VERIFY answer is rejected by the gate', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      let length = 0;
      capture.tamper = (cmd, resp) => {
        if (cmd[1] === VERIFY) length = resp.length;
        return undefined;
      };
      await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: (length - 2) * 8 - 1 }), async (bit) => {
          capture.tamper = (cmd, resp) => {
            if (cmd[1] !== VERIFY) return undefined;
            const bad = resp.slice();
            bad[bit >> 3] ^= 1 << (bit & 7);
            return bad;
          };
          // A flipped value fails the MAC or the unmasking (CryptoError); a flipped TLV structure is a malformed answer.
          const error = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }).catch((e: unknown) => e);
          expect(error instanceof CryptoError || error instanceof CardMisbehavedError, String(error)).toBe(true);
        }),
        { numRuns: 60 },
      );
      capture.tamper = undefined;
      await expect(gate.verifyTicket({ tid: face.tid })).resolves.toBeDefined();
    });

    it('a replayed VERIFY answer does not satisfy a new terminal challenge', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      let recorded: Uint8Array | undefined;
      capture.tamper = (cmd, resp) => {
        if (cmd[1] !== VERIFY) return undefined;
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
    it('records entry, temporary exit, re-entry, punch, paper printed and exit with MAC\'d receipts', async () => {
      const face = await issue();
      const gate = gateOn(c.session);
      await walkUsageStates(gate, face.tid, (receipt) => expect(receipt.mac?.length).toBe(LIMITS.symmetricMacLength));
    });

    it('a replayed WRITE USAGE does nothing (REFERENCE_DATA_NOT_USABLE), within or across sessions', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }), 'ENTRY');
      const recorded = capture.last(WRITE_USAGE);
      expectRawRefusal(c.card, recorded, SW.REFERENCE_DATA_NOT_USABLE); // its session is spent
      await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }), 'TEMPORARY_EXIT');
      await gate.verifyTicket({ tid: face.tid }); // a new session is open: still refused
      expectRawRefusal(c.card, recorded, SW.REFERENCE_DATA_NOT_USABLE);
    });

    it('a recorded command moved into a new session (fresh challenge) fails its MAC (COMMAND_SIGNATURE_INVALID)', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }), 'PUNCH');
      const recorded = capture.last(WRITE_USAGE);
      const v = await gate.verifyTicket({ tid: face.tid });
      const cmd = recorded.slice();
      const at = Buffer.from(cmd).indexOf(Buffer.from([T.CARD_CHALLENGE, LIMITS.challengeLength]));
      cmd.set(v.cardChallenge!, at + 2);
      expectRawRefusal(c.card, cmd, SW.COMMAND_SIGNATURE_INVALID);
    });

    it('a stale counter is refused (COUNTER_MISMATCH)', async () => {
      const face = await issue();
      const gate = gateOn(c.session);
      const stale = await gate.verifyTicket({ tid: face.tid });
      await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }), 'PUNCH');
      const view = await gate.verifyTicket({ tid: face.tid });
      await expectRefused(c.card, gate.recordUsage({ ...view, usage: stale.usage }, 'ENTRY'), 'COUNTER_MISMATCH');
    });

    it('a command MAC\'d with a wrong session key is refused (COMMAND_SIGNATURE_INVALID)', async () => {
      const face = await issue();
      const gate = gateOn(c.session);
      const view = await gate.verifyTicket({ tid: face.tid });
      const forged: TicketView = { ...view, session: { ...view.session!, macKey: new Uint8Array(randomBytes(16)) } };
      await expectRefused(c.card, gate.recordUsage(forged, 'ENTRY'), 'COMMAND_SIGNATURE_INVALID');
    });

    it('a pki WRITE USAGE cannot use a sym session, nor a sym one a pki challenge (REFERENCE_DATA_NOT_USABLE)', async () => {
      const face = await issue();
      const sym = gateOn(c.session);
      const pki = w.checkingTerminal(c.session);
      const symView = await sym.verifyTicket({ tid: face.tid });
      // The card answers 6984; a pki gate that just verified reads that as "the card never showed this view" (relay).
      const before = c.card.image.slice();
      const e = await pki.recordUsage({ ...symView, session: undefined }, 'ENTRY').catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RelayError);
      expect(((e as RelayError).cause as CardStatusError).sw).toBe(SW.REFERENCE_DATA_NOT_USABLE);
      expect(Buffer.from(c.card.image).equals(Buffer.from(before))).toBe(true);
      const symView2 = await sym.verifyTicket({ tid: face.tid });
      await pki.verifyTicket({ tid: face.tid }); // replaces the session with a pki challenge
      await expectRefused(c.card, sym.recordUsage(symView2, 'ENTRY'), 'REFERENCE_DATA_NOT_USABLE');
    });

    it('the session dies at reset and at a new SELECT', async () => {
      const face = await issue();
      const gate = gateOn(c.session);
      const view = await gate.verifyTicket({ tid: face.tid });
      await c.transport.reset();
      await gate.select();
      await expectRefused(c.card, gate.recordUsage(view, 'ENTRY'), 'REFERENCE_DATA_NOT_USABLE');
      const view2 = await gate.verifyTicket({ tid: face.tid });
      await gate.select();
      await expectRefused(c.card, gate.recordUsage(view2, 'ENTRY'), 'REFERENCE_DATA_NOT_USABLE');
    });

    it('any bit flipped in a MAC\'d command is refused and the card is unchanged', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      const view = await gate.verifyTicket({ tid: face.tid });
      capture.tamper = (cmd) => (cmd[1] === WRITE_USAGE ? new Uint8Array([0x69, 0x00]) : undefined); // keep the card's answer away
      await gate.recordUsage(view, 'ENTRY').catch(() => undefined);
      capture.tamper = undefined;
      const original = capture.last(WRITE_USAGE);
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 7 * 8, max: original.length * 8 - 8 * 2 - 1 }), async (bit) => {
          // Replay the recorded bytes against a fresh session: the MAC no longer matches whatever the flip.
          await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
          const cmd = original.slice();
          cmd[bit >> 3] ^= 1 << (bit & 7);
          const before = c.card.image.slice();
          const r = c.card.transmit(cmd);
          expect((r[r.length - 2] << 8) | r[r.length - 1]).not.toBe(SW.SUCCESS);
          expect(Buffer.from(c.card.image).equals(Buffer.from(before))).toBe(true);
        }),
        { numRuns: 40 },
      );
    });

    it('any bit flipped in the live command of a session is refused and the card is unchanged', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 10_000 }), async (seed) => {
          let flipped = false;
          capture.tamper = undefined;
          const view = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
          const before = c.card.image.slice();
          const transport = capture as unknown as { transmit(b: Uint8Array): Promise<Uint8Array> };
          const inner = transport.transmit.bind(capture);
          transport.transmit = async (cmd: Uint8Array) => {
            if (cmd[1] !== WRITE_USAGE || flipped) return inner(cmd);
            const bad = cmd.slice();
            const bit = 7 * 8 + (seed % ((bad.length - 9) * 8));
            bad[bit >> 3] ^= 1 << (bit & 7);
            flipped = true;
            return inner(bad);
          };
          // The card refuses a command whose MAC does not verify with a status word, and changes nothing.
          await expect(gate.recordUsage(view, 'PUNCH')).rejects.toBeInstanceOf(CardStatusError);
          delete (transport as { transmit?: unknown }).transmit;
          expect(Buffer.from(c.card.image).equals(Buffer.from(before))).toBe(true);
        }),
        { numRuns: 30 },
      );
    });

    it('the card refuses an event its usage state does not allow (CONDITIONS_NOT_SATISFIED)', async () => {
      const face = await issue();
      const gate = gateOn(c.session);
      await expectRefused(c.card, gate.verifyTicket({ tid: face.tid }).then((v) => gate.recordUsage(v, 'EXIT')), 'CONDITIONS_NOT_SATISFIED');
    });
  });

  describe('delete (651-653)', () => {
    it('deletes with a MAC\'d receipt; the ticket is then void and a replayed DELETE does nothing', async () => {
      const face = await issue();
      const { capture, gate } = await capturing();
      const receipt = await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }));
      expect(receipt.event).toBe(USAGE_EVENT.DELETED);
      const recorded = capture.last(DELETE);
      await expectAbsent(c.card, gate.verifyTicket({ tid: face.tid }), 'void');
      expectRawRefusal(c.card, recorded, SW.REFERENCE_DATA_NOT_USABLE);
      expect((await c.issuing.capacity()).tombstones).toBe(1);
      await expectRefused(c.card, c.issuing.load(w.authority.issue(face, c.credentials).sealed), 'TICKET_REPLAYED');
    });

    it('a replayed DELETE under a new session fails its MAC (COMMAND_SIGNATURE_INVALID)', async () => {
      const keep = await issue();
      const face = await issue();
      const { capture, gate } = await capturing();
      await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }));
      const recorded = capture.last(DELETE);
      const v = await gate.verifyTicket({ tid: keep.tid });
      const cmd = recorded.slice();
      const at = Buffer.from(cmd).indexOf(Buffer.from([T.CARD_CHALLENGE, LIMITS.challengeLength]));
      cmd.set(v.cardChallenge!, at + 2);
      expectRawRefusal(c.card, cmd, SW.COMMAND_SIGNATURE_INVALID);
    });
  });

  describe('gate decisions', () => {
    it('passes in and out, and rejects with the reason', async () => {
      await issue({ origin: 'BJS', destination: 'SHH' });
      const entry = gateOn(c.session, { station: 'BJS' });
      const first = await entry.passGate('entry');
      expect(first.decision.pass).toBe(true);
      expect(first.receipt?.mac).toBeDefined();
      expect((await entry.passGate('entry')).decision.reason).toBe('already_inside');
      const exit = gateOn(c.session, { station: 'SHH' });
      expect((await exit.passGate('exit')).decision.pass).toBe(true);
      expect((await exit.passGate('exit')).decision.reason).toBe('already_exited');
      expect((await gateOn(c.session, { station: 'XXX' }).passGate('entry')).decision.reason).toBe('not_found');
    });

    it('a tap is SELECT, VERIFY, WRITE USAGE: three APDUs, no GET RESPONSE', async () => {
      await issue({ origin: 'BJS' });
      const names: string[] = [];
      const session = new CardSession(new EmulatorTransport(c.card), { trace: (e) => names.push(e.command) });
      const gate: CheckingTerminal = gateOn(session, { station: 'BJS' });
      expect((await gate.passGate('entry')).decision.pass).toBe(true);
      expect(names).toEqual(['SELECT', 'VERIFY', 'WRITE USAGE']);
    });
  });

  describe('personalisation', () => {
    it('PUT KEY P1=05 refuses a duplicate key id, a wildcard operator and a key of the wrong length', async () => {
      const { EticketCard } = await import('../card/applet.js');
      const blank = EticketCard.inMemory({ suite });
      const session = new CardSession(new EmulatorTransport(blank));
      await session.select();
      const serial = blank.persistent.serial;
      const obj = (op: string, key: Uint8Array, id = masterKeyId(w.masterKey.key, op)) => concat(tlv(T.KEY_ID, id), tlv(T.OPERATOR_SCOPE, utf8(op)), tlv(T.KEY_MATERIAL, key), tlv(T.PRIVACY_KEY, new Uint8Array(16).fill(7)));
      await session.send('PUT KEY', { p1: 0x05, data: obj('CR', diversify(w.masterKey.key, serial, 'CR')) });
      await expectRefused(blank, session.send('PUT KEY', { p1: 0x05, data: obj('CR', diversify(w.masterKey.key, serial, 'CR')) }), 'ALREADY_EXISTS');
      await expectRefused(blank, session.send('PUT KEY', { p1: 0x05, data: obj('*', new Uint8Array(16)) }), 'INCORRECT_DATA');
      await expectRefused(blank, session.send('PUT KEY', { p1: 0x05, data: obj('M', new Uint8Array(24)) }), 'INCORRECT_DATA');
      const installed = (await session.send('GET DATA', { p2: T.INSTALLED_KEYS })).data;
      expect(installed[0]).toBe(3);
    });
  });
});
