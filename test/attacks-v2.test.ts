// The attacks protocol version 2 closes (issue 10 items 1, 2, 5, 7, 8; issue 12 item 5), each played as an adversary
// would: a relay device between gate and card, a seen ticket sealed to a second card, a short Le on every
// state-changing command, a keyless reader probing, a counter and a ticket table at their limits, and key rotation.
// Each shows the documented status word or typed error, and the card image byte-identical where it refused.

import { beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { MemoryBackend } from '../card/nvm.js';
import { decodeState, encodeState, makeRecord } from '../card/state.js';
import type { CheckingTerminal } from '../host/checking.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { encodeCommand, parseCommand } from '../sdk/apdu.js';
import { concat, hex } from '../sdk/bytes.js';
import { decodeTicketView, encodeTicketView, VIEW_STATUS, viewLengthFor } from '../sdk/commands/ticket-view.js';
import { encodeUsageBody, encodeUsageCommand, usageSignatureMessage } from '../sdk/commands/usage-command.js';
import { decodeSessionView, encodeVerifyQuery, VERIFY_P1 } from '../sdk/commands/verify.js';
import { encodeReadQuery } from '../sdk/commands/read.js';
import { decodeTerminalKey } from '../sdk/crypto/bundle.js';
import { open, seal } from '../sdk/crypto/envelope.js';
import { sha256 } from '../sdk/crypto/suite.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { masterKeyId, privacyKey, unmaskSerial } from '../sdk/crypto/symmetric.js';
import { CryptoError } from '../sdk/errors.js';
import type { Icc } from '../sdk/icc.js';
import { encodeLoadAnswer } from '../sdk/commands/load.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { decodeKeyCertificate, keyCertificateBody, signKeyCertificate } from '../sdk/roles/key-certificate.js';
import { parseReceipt } from '../sdk/receipt.js';
import { AID, LIMITS, SUITE, SW, T, USAGE_STATE, type SuiteName } from '../sdk/spec.js';
import { decodeTicketFace, encodeTicketFace, encodeUsageRecord, encodeVerificationCode, faceDigestOf, type TicketFace } from '../sdk/ticket.js';
import { TlvMap, tlv } from '../sdk/tlv.js';
import { suiteWorldBuilders, type World, type WorldCard } from '../testing/world.js';
import { authenticateRaw, expectRefused, SUITES, today, worldFor } from './helpers/world.js';

const SELECT = new Uint8Array([0x00, 0xa4, 0x04, 0x0c, AID.length, ...AID]);
const swOf = (r: Uint8Array) => (r[r.length - 2] << 8) | r[r.length - 1];
const dataOf = (r: Uint8Array) => r.subarray(0, r.length - 2);
const sameImage = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/**
 * A device between gate and card. It passes every command through, except VERIFY, which it answers itself with a
 * view it made up, sealed to the gate's public encryption key (anyone can seal to it). `keyless`: it learns a card
 * challenge from GET CHALLENGE (the v1 attack) and knows the card's serial from an earlier receipt sniffed in clear.
 * `insider`: it holds the gate's view-decryption key (a compromised reader module), so it forwards VERIFY, reads
 * the genuine challenge and serial, and substitutes only the face and usage.
 */
class RelayIcc implements Icc {
  answeredVerify = 0;
  /** Off: a plain pass-through (the gate meets the card once genuinely, as gates meet the same cards every day). */
  active = false;
  constructor(
    private readonly card: EticketCard,
    private readonly w: World,
    private readonly strategy: 'keyless' | 'insider',
    private readonly forge: (genuine: { face: TicketFace; serial: Uint8Array }) => { face: TicketFace; usageState: number },
    private readonly knownSerial: Uint8Array,
  ) {}
  atr() {
    return this.card.atr();
  }
  powerOn() {
    this.card.powerOn();
  }
  powerOff() {
    this.card.powerOff();
  }
  reset() {
    this.card.reset();
  }
  transmit(command: Uint8Array): Uint8Array {
    if (!this.active || command[1] !== 0x54) return this.card.transmit(command);
    this.answeredVerify++;
    const keys = this.w.keys.terminalKeys;
    const rt = TlvMap.parse(parseCommand(command).data).require(T.TERMINAL_CHALLENGE);
    let rc: Uint8Array;
    let face: TicketFace | undefined;
    let serial = this.knownSerial;
    if (this.strategy === 'insider') {
      // The card's genuine answer (its view of today: no ticket, the passenger's is for another day), read.
      const genuine = this.card.transmit(command);
      const view = decodeTicketView(open(keys.encryption, SUITE[this.w.suite], keys.keyId, dataOf(genuine)));
      rc = view.cardChallenge!;
      serial = view.cardSerial;
      face = view.face;
    } else {
      rc = dataOf(this.card.transmit(new Uint8Array([0x00, 0x84, 0x00, 0x00, 0x08])));
    }
    // A face the gate would pass, bound to this card (the default gate does not audit TF_V).
    face ??= { ...this.w.ticketServer.createTicket({ serviceDate: today(this.w) }), card: serial };
    const forged = this.forge({ face, serial });
    const usage = encodeUsageRecord({ entries: forged.usageState === USAGE_STATE.INSIDE ? 1 : 0, temporaryExits: 0, state: forged.usageState, flags: 0, lastGate: '', lastStation: '', lastTime: 0, counter: 0 });
    const fake = encodeTicketView(
      { status: VIEW_STATUS.SHOWN, ticket: { sequenceNumber: 1, face: encodeTicketFace(forged.face), usage }, terminalChallenge: rt, cardChallenge: rc, cardSerial: serial },
      viewLengthFor({ verificationCode: false }),
    );
    const sealed = seal(getSuite(this.w.suite), decodeTerminalKey(keys.publicKey).encryption, keys.keyId, fake);
    return concat(sealed, new Uint8Array([0x90, 0x00]));
  }
}

describe.each(SUITES)('%s suite: protocol version 2 against the attacks of issue 10', (suite: SuiteName) => {
  let w: World;
  let c: WorldCard;

  beforeAll(async () => {
    w = worldFor(suite);
  });

  const issue = async (card: WorldCard, over: Record<string, unknown> = {}) => {
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'G1', origin: 'BJS', destination: 'SHH', ...over });
    await card.issuing.load(w.authority.issue(face, card.credentials).sealed);
    return face;
  };

  describe('item 1: a relay device between gate and card', () => {
    // The passenger holds a genuine ticket for another day and another route; the relay shows the gate a face that
    // would pass (today, this station, and INSIDE for an exit), then passes the gate's WRITE USAGE to the card.
    const forgeFor = (direction: 'entry' | 'exit') => (g: { face: TicketFace; serial: Uint8Array }) => ({
      face: { ...g.face, serviceDate: today(w), origin: 'BJS', destination: 'SHH', validFrom: w.now - 3600, validUntil: w.now + 3600 },
      usageState: direction === 'exit' ? USAGE_STATE.INSIDE : USAGE_STATE.NEW,
    });

    it.each([
      ['keyless', 'entry'],
      ['keyless', 'exit'],
      ['insider', 'entry'],
      ['insider', 'exit'],
    ] as const)('a %s relay, %s: the default gate answers REJECT relay and the card is byte-identical', async (strategy, direction) => {
      c = await w.newCard();
      await issue(c, { serviceDate: 20301201, origin: 'XAN', destination: 'NKG' });
      const relay = new RelayIcc(c.card, w, strategy, forgeFor(direction), c.credentials.serial);
      const gate: CheckingTerminal = w.checkingTerminal(new CardSession(new EmulatorTransport(relay)), { station: direction === 'entry' ? 'BJS' : 'SHH' });
      // The gate has met this card before (it knows its receipt key); today the relay is in place.
      expect((await gate.passGate(direction)).decision.reason).toBe('not_found');
      relay.active = true;
      const before = c.card.image.slice();
      const r = await gate.passGate(direction);
      expect(relay.answeredVerify).toBeGreaterThan(0);
      expect(r.decision, r.decision.message).toMatchObject({ pass: false, reason: 'relay' });
      expect(r.decision.message).toMatch(strategy === 'insider' ? /9107 VIEW_MISMATCH/ : /6984/);
      expect(sameImage(c.card.image, before), 'the card wrote nothing').toBe(true);
    });

    it('without the relay the same card and gate work: a genuine ticket passes, so the refusal above is the relay\'s', async () => {
      c = await w.newCard();
      await issue(c);
      const r = await w.checkingTerminal(c.session, { station: 'BJS' }).passGate('entry');
      expect(r.decision.pass).toBe(true);
      expect(hex(r.receipt!.faceDigest!)).toBe(hex(faceDigestOf(r.ticket!.faceEncoded)));
    });

    it('the card refuses (9107) a command whose DF21 is not the digest of the view it showed, and one for another ticket, writing nothing', async () => {
      c = await w.newCard();
      const a = await issue(c);
      const b = await issue(c, { train: 'G2' });
      const gate = w.checkingTerminal(c.session);
      const view = await gate.verifyTicket({ tid: a.tid }, { verificationCode: false });
      await expectRefused(c.card, gate.recordUsage({ ...view, viewDigest: sha256(new Uint8Array(1)) }, 'ENTRY'), 'VIEW_MISMATCH');
      const again = await gate.verifyTicket({ tid: a.tid }, { verificationCode: false });
      const other = await gate.verifyTicket({ tid: b.tid }, { verificationCode: false });
      // A view of b is pending; a command naming a (with a's face and digest) does not answer it.
      await expectRefused(c.card, gate.recordUsage({ ...again, cardChallenge: other.cardChallenge }, 'ENTRY'), 'VIEW_MISMATCH');
    });

    it('sym: a session binds the ticket it showed; a command naming another ticket is 9107', async () => {
      c = await w.newCard();
      const a = await issue(c);
      const b = await issue(c, { train: 'G2' });
      const gate = w.checkingTerminal(c.session, { mode: 'sym' });
      const va = await gate.verifyTicket({ tid: a.tid }, { verificationCode: false });
      const vb = await gate.verifyTicket({ tid: b.tid }, { verificationCode: false });
      // The session of b, a command for a: MAC'd correctly under b's session, still refused.
      await expectRefused(c.card, gate.recordUsage({ ...va, session: vb.session, cardChallenge: vb.cardChallenge }, 'ENTRY'), 'VIEW_MISMATCH');
    });
  });

  describe('item 2: a ticket seen elsewhere sealed to a second card', () => {
    it('an auditing gate sees face and TF_V on card A; sealed to card B with B\'s public credentials it is refused (9102), B unchanged', async () => {
      const a = await w.newCard();
      const b = await w.newCard();
      const face = await issue(a);
      // What an auditing gate (or an insider) sees: the signed face and TF_V, exactly as signed.
      const seen = await w.checkingTerminal(a.session).verifyTicket({ tid: face.tid }, { verificationCode: true });
      const tfv = encodeVerificationCode(seen.verificationCode!);
      const bKey = w.keys.cardTrust.encryptionKey(b.credentials);
      const copy = seal(getSuite(suite), bKey, b.credentials.serial, concat(seen.faceEncoded, tfv));
      await expectRefused(b.card, b.issuing.load(copy), 'TICKET_NOT_FOR_THIS_CARD');
      // The face names card A; a gate shown it by any other card would say wrong_card.
      expect(hex(decodeTicketFace(seen.faceEncoded).card!)).toBe(hex(a.credentials.serial));
    });

    it('an unbound version 1 face, validly signed, is refused at LOAD (6A80)', async () => {
      const card = await w.newCard();
      const f = { ...w.ticketServer.createTicket({ serviceDate: today(w) }), version: 1 };
      const faceEncoded = encodeTicketFace(f);
      const root = w.keys.authorityKey;
      const tfv = encodeVerificationCode({ suite: SUITE[suite], authorityKeyId: w.authority.keyId, signature: root.sign(concat(new TextEncoder().encode('ETKT TFV 1'), faceEncoded)) });
      const sealed = seal(getSuite(suite), w.keys.cardTrust.encryptionKey(card.credentials), card.credentials.serial, concat(faceEncoded, tfv));
      await expectRefused(card.card, card.issuing.load(sealed), 'INCORRECT_DATA');
    });
  });

  describe('item 5: a short Le on a state-changing command', () => {
    /** A command in short APDUs: chained parts of 255 bytes, the last one with Le = `le`. */
    const shortChained = (card: EticketCard, cla: number, ins: number, p1: number, data: Uint8Array, le: number): Uint8Array => {
      let o = 0;
      for (; data.length - o > 255; o += 255) expect(swOf(card.transmit(encodeCommand({ cla: cla | 0x10, ins, p1, p2: 0, data: data.subarray(o, o + 255) })))).toBe(SW.SUCCESS);
      return card.transmit(encodeCommand({ cla, ins, p1, p2: 0, data: data.subarray(o), ne: le }));
    };
    /** GET RESPONSE until 9000: the rest of the answer, the image unchanged meanwhile. */
    const rest = (card: EticketCard): Uint8Array => {
      const before = card.image.slice();
      const parts: Uint8Array[] = [];
      let r: Uint8Array;
      do {
        r = card.transmit(new Uint8Array([0x00, 0xc0, 0x00, 0x00, 0x00]));
        parts.push(dataOf(r));
      } while ((swOf(r) & 0xff00) === SW.BYTES_REMAINING);
      expect(swOf(r)).toBe(SW.SUCCESS);
      expect(sameImage(card.image, before), 'GET RESPONSE changes nothing').toBe(true);
      return concat(...parts);
    };

    it('LOAD with Le=01: 61XX and one byte, the rest by GET RESPONSE; the ticket was stored once (LOAD again: 6A89)', async () => {
      c = await w.newCard();
      const face = w.ticketServer.createTicket({ serviceDate: today(w) });
      const sealed = w.authority.issue(face, c.credentials).sealed;
      c.card.transmit(SELECT);
      const r = shortChained(c.card, 0x80, 0x50, 0x00, sealed, 1);
      expect(swOf(r) & 0xff00).toBe(SW.BYTES_REMAINING);
      expect(dataOf(r)).toHaveLength(1);
      const answer = concat(dataOf(r), rest(c.card));
      expect(hex(answer)).toBe(hex(encodeLoadAnswer({ sequenceNumber: 1, tid: face.tid })));
      await expectRefused(c.card, c.issuing.load(sealed), 'ALREADY_EXISTS');
    });

    it.each(['WRITE USAGE', 'DELETE'] as const)('%s with Le=01: 61XX, the receipt whole by GET RESPONSE; the counter moved once', async (name) => {
      c = await w.newCard();
      const face = await issue(c);
      const gate = w.checkingTerminal(c.session);
      const v = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
      const keys = w.keys.terminalKeys;
      const body = encodeUsageBody(name, 'pki', { keyId: keys.keyId, cardChallenge: v.cardChallenge!, tid: face.tid, counter: 0, event: name === 'DELETE' ? undefined : 4, gateId: 'G', station: 'BJS', time: w.now, viewDigest: v.viewDigest });
      const command = encodeUsageCommand('pki', body, keys.signature.sign(usageSignatureMessage(name, c.credentials.serial, body)));
      const r = shortChained(c.card, 0x80, name === 'DELETE' ? 0x58 : 0x56, 0x00, command, 1);
      expect(swOf(r) & 0xff00).toBe(SW.BYTES_REMAINING);
      const receipt = parseReceipt(concat(dataOf(r), rest(c.card)));
      expect(receipt).toMatchObject({ tid: face.tid, counter: 1, version: 2 });
      if (name === 'DELETE') await expect(gate.verifyTicket({ tid: face.tid })).rejects.toMatchObject({ status: 'void' });
      else expect((await gate.verifyTicket({ tid: face.tid }, { verificationCode: false })).usage.counter).toBe(1);
    });

    it.skipIf(suite !== 'rsa')('GENERATE KEY with Le=01: 61XX, the public key by GET RESPONSE is the one GET DATA D3 then gives', () => {
      const blank = EticketCard.inMemory({ suite });
      blank.transmit(SELECT);
      const r = blank.transmit(new Uint8Array([0x80, 0x46, 0x01, 0x00, 0x01]));
      expect(swOf(r) & 0xff00).toBe(SW.BYTES_REMAINING);
      const key = concat(dataOf(r), rest(blank));
      const d3 = blank.transmit(new Uint8Array([0x80, 0xca, 0x00, T.CARD_ENCRYPTION_PUBLIC_KEY, 0x00, 0x00, 0x00]));
      expect(hex(dataOf(d3))).toBe(hex(key));
    });
  });

  describe('item 7: a keyless reader', () => {
    it('probing VERIFY and READ by date, station, train and a deleted TID gets 9000 answers of one length; GET DATA of identifying objects 6982 until EXTERNAL AUTHENTICATE', async () => {
      c = await w.newCard();
      const found = await issue(c, { train: 'P1', origin: 'BJS' });
      const gone = await issue(c, { train: 'P2' });
      const gate = w.checkingTerminal(c.session);
      await gate.deleteTicket(await gate.verifyTicket({ tid: gone.tid }, { verificationCode: false }));
      // The reader knows a terminal key id (it travels in clear in every gate's query), not its private key.
      const keyId = w.keys.terminalKeys.keyId;
      const rt = new Uint8Array(16);
      c.card.transmit(SELECT);
      const probes: [string, Uint8Array, number][] = [
        ['VERIFY the TID it holds', encodeVerifyQuery({ keyId, terminalChallenge: rt, criteria: { tid: found.tid } }), 0x54],
        ['VERIFY a TID it never held', encodeVerifyQuery({ keyId, terminalChallenge: rt, criteria: { tid: 'NOPE' } }), 0x54],
        ['VERIFY a deleted TID', encodeVerifyQuery({ keyId, terminalChallenge: rt, criteria: { tid: gone.tid } }), 0x54],
        ['VERIFY by date, train and station (held)', encodeVerifyQuery({ keyId, terminalChallenge: rt, criteria: { date: today(w), train: 'P1', station: 'BJS' } }), 0x54],
        ['VERIFY by a date with no ticket', encodeVerifyQuery({ keyId, terminalChallenge: rt, criteria: { date: 20991231 } }), 0x54],
        ['VERIFY by another station', encodeVerifyQuery({ keyId, terminalChallenge: rt, criteria: { date: today(w), station: 'XXX' } }), 0x54],
        ['READ by date and train (held)', encodeReadQuery({ keyId, terminalChallenge: rt, date: today(w), train: 'P1' }), 0x52],
        ['READ by a train it does not hold', encodeReadQuery({ keyId, terminalChallenge: rt, date: today(w), train: 'P9' }), 0x52],
      ];
      const lengths = new Set<number>();
      for (const [what, data, ins] of probes) {
        const r = c.card.transmit(encodeCommand({ cla: 0x80, ins, p1: 0x00, p2: 0x00, data, ne: 65536 }));
        expect(swOf(r), what).toBe(SW.SUCCESS);
        lengths.add(r.length);
      }
      expect([...lengths], 'every answer has the same length').toHaveLength(1);
      for (const tag of [T.CARD_SERIAL, T.CARD_ENCRYPTION_PUBLIC_KEY, T.CARD_SIGNING_PUBLIC_KEY, T.CARD_ENCRYPTION_CERTIFICATE, T.CARD_SIGNING_CERTIFICATE, T.CAPACITY, T.INSTALLED_KEYS, T.CARD_IDENTITY]) {
        expect(swOf(c.card.transmit(new Uint8Array([0x80, 0xca, 0x00, tag, 0x00]))), tag.toString(16)).toBe(SW.SECURITY_STATUS_NOT_SATISFIED);
      }
      const fci = dataOf(c.card.transmit(new Uint8Array([0x00, 0xa4, 0x04, 0x00, AID.length, ...AID, 0x00])));
      expect(hex(fci)).not.toContain(hex(c.credentials.serial));
      authenticateRaw(c.card, w);
      expect(hex(dataOf(c.card.transmit(new Uint8Array([0x80, 0xca, 0x00, T.CARD_SERIAL, 0x00]))))).toBe(hex(c.credentials.serial));
    });

    it('sym answers carry no clear serial, and two taps of one card are unlinkable without K_priv (the gate links them with it)', async () => {
      const a = await w.newCard();
      const b = await w.newCard();
      for (const card of [a, b]) await issue(card);
      const answer = (card: WorldCard, tid: string) => {
        card.card.transmit(SELECT);
        const q = encodeVerifyQuery({ keyId: masterKeyId(w.masterKey.key, w.operator), terminalChallenge: new Uint8Array(16), criteria: { tid } });
        const r = card.card.transmit(encodeCommand({ cla: 0x80, ins: 0x54, p1: VERIFY_P1.SYM, p2: 0x00, data: q, ne: 65536 }));
        expect(swOf(r)).toBe(SW.SUCCESS);
        return dataOf(r);
      };
      const tap1 = answer(a, 'ANY');
      const tap2 = answer(a, 'ANY');
      const other = answer(b, 'ANY');
      for (const t of [tap1, tap2]) expect(hex(t)).not.toContain(hex(a.credentials.serial));
      expect(new Set([tap1.length, tap2.length, other.length]).size).toBe(1);
      const [s1, s2, s3] = [tap1, tap2, other].map(decodeSessionView);
      // Without K_priv the masked serials of one card differ in every tap as those of two cards do.
      expect(hex(s1.maskedSerial)).not.toBe(hex(s2.maskedSerial));
      expect(hex(s1.cardChallenge)).not.toBe(hex(s2.cardChallenge));
      const kPriv = privacyKey(w.masterKey.key, w.operator);
      expect(hex(unmaskSerial(kPriv, s1.maskedSerial, s1.cardChallenge)!)).toBe(hex(a.credentials.serial));
      expect(hex(unmaskSerial(kPriv, s2.maskedSerial, s2.cardChallenge)!)).toBe(hex(a.credentials.serial));
      expect(hex(unmaskSerial(kPriv, s3.maskedSerial, s3.cardChallenge)!)).toBe(hex(b.credentials.serial));
      // A wrong K_priv (another operator's) does not even unmask: the second half is not the RC.
      expect(unmaskSerial(privacyKey(w.masterKey.key, 'OTHER'), s1.maskedSerial, s1.cardChallenge)).toBeUndefined();
    });

    it('WRITE USAGE without a pending view: 6984 whether or not the card holds the ticket (nothing looked up)', async () => {
      c = await w.newCard();
      const face = await issue(c);
      const keys = w.keys.terminalKeys;
      c.card.transmit(SELECT);
      const answers = new Set<number>();
      for (const tid of [face.tid, 'NOPE']) {
        const body = encodeUsageBody('WRITE USAGE', 'pki', { keyId: keys.keyId, cardChallenge: new Uint8Array(8), tid, counter: 0, event: 1, gateId: 'G', station: 'S', time: 1, viewDigest: new Uint8Array(32) });
        const command = encodeUsageCommand('pki', body, keys.signature.sign(usageSignatureMessage('WRITE USAGE', c.credentials.serial, body)));
        answers.add(swOf(c.card.transmit(encodeCommand({ cla: 0x80, ins: 0x56, p1: 0, p2: 0, data: command, ne: 256 }))));
      }
      expect([...answers]).toEqual([SW.REFERENCE_DATA_NOT_USABLE]);
    });
  });

  describe('a card image copied back (rollback)', () => {
    it('the card cannot tell and accepts the ticket again, but its receipts repeat the counter for one face: the evidence the back office acts on (issue 14)', async () => {
      c = await w.newCard();
      await issue(c);
      const saved = c.card.image.slice();
      const first = (await w.checkingTerminal(c.session, { station: 'BJS' }).passGate('entry')).receipt!;
      // The image file copied back: a card that knows nothing of the tap above.
      const backend = new MemoryBackend();
      backend.write('image', 0, saved);
      w.now += 60;
      const second = (await w.checkingTerminal(new CardSession(new EmulatorTransport(EticketCard.open(backend))), { station: 'BJS' }).passGate('entry')).receipt!;
      w.now -= 60;
      expect(second.counter).toBe(first.counter);
      expect(hex(second.faceDigest!)).toBe(hex(first.faceDigest!));
      expect(second.usage!.lastTime).not.toBe(first.usage!.lastTime);
    });
  });

  describe('item 8: limits instead of hangs', () => {
    /** A copy of the card with its state changed directly: what 65,533 taps or 4,095 LOADs would do. */
    const edited = (card: EticketCard, edit: (s: ReturnType<typeof decodeState>) => void) => {
      const s = decodeState(card.image);
      edit(s);
      const backend = new MemoryBackend();
      backend.write('image', 0, encodeState(s));
      const copy = EticketCard.open(backend);
      const session = new CardSession(new EmulatorTransport(copy));
      return { copy, session, issuing: w.issuingTerminal(session) };
    };

    it('a counter at limits.maxUsageEvents: WRITE USAGE is refused (6985) in both modes, DELETE still works', async () => {
      c = await w.newCard();
      const face = await issue(c);
      const { copy, session } = edited(c.card, (s) => (s.tickets[0] = { ...s.tickets[0], usage: { ...s.tickets[0].usage, counter: LIMITS.maxUsageEvents - 1 } }));
      const gate = w.checkingTerminal(session);
      await gate.select();
      const last = await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }), 'PUNCH');
      expect(last.counter).toBe(LIMITS.maxUsageEvents);
      await expectRefused(copy, gate.verifyTicket({ tid: face.tid }, { verificationCode: false }).then((v) => gate.recordUsage(v, 'PUNCH')), 'CONDITIONS_NOT_SATISFIED');
      const sym = w.checkingTerminal(session, { mode: 'sym' });
      await expectRefused(copy, sym.verifyTicket({ tid: face.tid }, { verificationCode: false }).then((v) => sym.recordUsage(v, 'PUNCH')), 'CONDITIONS_NOT_SATISFIED');
      const deletion = await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }));
      expect(deletion.counter).toBe(LIMITS.maxUsageEvents + 1);
    });

    it('a ticket table at limits.maxTickets: LOAD answers 6A84 at once (no search for a free slot), and after a DELETE it fits', async () => {
      c = await w.newCard({ capacity: 8 * 1024 * 1024 });
      const first = await issue(c);
      const { copy, issuing, session } = edited(c.card, (s) => {
        const f = decodeTicketFace(s.tickets[0].face);
        for (let i = s.tickets.length; i < LIMITS.maxTickets; i++) s.tickets.unshift(makeRecord(i + 1, encodeTicketFace({ ...f, tid: `COPY-${i}` }), s.tickets[s.tickets.length - 1].tfv, s.tickets[s.tickets.length - 1].usage));
        s.nextSeq = 2; // every number from here on is taken: the card must not scan 65,535 of them
      });
      const next = w.ticketServer.createTicket({ serviceDate: today(w) });
      const sealed = w.authority.issue(next, c.credentials).sealed;
      await expectRefused(copy, issuing.load(sealed), 'NOT_ENOUGH_MEMORY');
      const gate = w.checkingTerminal(session);
      await gate.deleteTicket(await gate.verifyTicket({ tid: first.tid }, { verificationCode: false }));
      expect((await issuing.load(sealed)).tid).toBe(next.tid);
    });
  });

  describe('issue 12 item 5: a card personalised before two rotations', () => {
    const T0 = 1_900_000_000;
    const day = 86_400;
    /** Signing keys of the suite, certified by the world's authority root for `window`. */
    const rotated = (n: number, window: [number, number], root = w.keys.authorityKey) => {
      const signer = suiteWorldBuilders[suite]!().authorityKey;
      const certificate = signKeyCertificate(root, { publicKey: signer.publicKey, scopes: [w.operator], validFrom: window[0], validUntil: window[1] }).encoded;
      return { signer, certificate, server: new AuthenticationServer(signer, w.keys.cardTrust, { certificate }), n };
    };
    const faceAt = (issuedAt: number, tid: string): TicketFace => ({ ...w.ticketServer.createTicket({ serviceDate: 20300315, tid, validFrom: T0, validUntil: T0 + 400 * day }), issuedAt });

    it('accepts the current certified key, refuses a retired key after a newer ticket, an unknown root, a tampered certificate, a ticket outside the window; the gate audit agrees', async () => {
      const card = await w.newCard(); // holds only the root key
      const k1 = rotated(1, [T0, T0 + day]);
      const k2 = rotated(2, [T0 + day, T0 + 30 * day]);
      const stamp = `${suite}${Date.now() % 100000}`;
      const gate = w.checkingTerminal(card.session);
      // Before the newer ticket, k1 is still good.
      await card.issuing.load(k1.server.issue(faceAt(T0 + 100, `K1-${stamp}`), card.credentials).sealed);
      // The current key (second rotation): accepted, and its TF_V audits through the A4 at the gate.
      await card.issuing.load(k2.server.issue(faceAt(T0 + 2 * day, `K2-${stamp}`), card.credentials).sealed);
      const audited = await gate.verifyTicket({ tid: `K2-${stamp}` }, { verificationCode: true });
      expect(hex(audited.verificationCode!.certificate!)).toBe(hex(k2.certificate));
      // Retired: the card accepted a ticket of T0 + 2 days, after k1's certificate ended; a k1 ticket of its window is refused.
      const late = k1.server.issue(faceAt(T0 + 200, `K1b-${stamp}`), card.credentials);
      await expectRefused(card.card, card.issuing.load(late.sealed), 'TICKET_SIGNATURE_INVALID');
      // Unknown root: a key certified by a root the card does not hold.
      const stranger = rotated(3, [T0, T0 + 30 * day], suiteWorldBuilders[suite]!().authorityKey);
      const foreign = stranger.server.issue(faceAt(T0 + 3 * day, `KX-${stamp}`), card.credentials);
      await expectRefused(card.card, card.issuing.load(foreign.sealed), 'REFERENCED_DATA_NOT_FOUND');
      // Tampered certificate: its end moved a year later after the root signed it.
      const c2 = decodeKeyCertificate(k2.certificate);
      const stretched = tlv(T.KEY_CERTIFICATE, concat(keyCertificateBody({ ...c2, validUntil: c2.validUntil + 365 * day }), tlv(T.SIGNATURE, c2.signature)));
      const tampered = new AuthenticationServer(k2.signer, w.keys.cardTrust, { certificate: stretched }).issue(faceAt(T0 + 3 * day, `KT-${stamp}`), card.credentials);
      await expectRefused(card.card, card.issuing.load(tampered.sealed), 'TICKET_SIGNATURE_INVALID');
      // Outside the window: issued after k2's certificate ends.
      const outside = k2.server.issue(faceAt(T0 + 31 * day, `KO-${stamp}`), card.credentials);
      await expectRefused(card.card, card.issuing.load(outside.sealed), 'TICKET_SIGNATURE_INVALID');
      // The gate's TF_V audit checks the same chain against the roots it trusts, the window against issuedAt.
      for (const [what, t] of [['unknown root', foreign], ['tampered certificate', tampered], ['outside the window', outside]] as const) {
        expect(() => gate.checkVerificationCode(t.ticket.faceEncoded, t.ticket.verificationCode), what).toThrow(CryptoError);
      }
      expect(() => gate.checkVerificationCode(late.ticket.faceEncoded, late.ticket.verificationCode)).not.toThrow();
    });
  });
});
