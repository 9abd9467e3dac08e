// Real-name building blocks: the holder record's checks and canonical form, the binding digest (recomputed here
// from its definition in apdu-spec README 3.8), the answer sealed to a terminal, the binding check that catches
// a record swapped to another ticket, and the face fields 95/96 end to end through a card.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex, utf8 } from '../bytes.js';
import { CryptoError, CardStatusError } from '../errors.js';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { KeyGenerationCentre } from './kgc.js';
import { seal } from '../crypto/envelope.js';
import { getSuite } from '../crypto/suites.js';
import { encodeLoadPayload } from '../commands/load.js';
import { RecordCodec } from '../fields.js';
import { protocol, T } from '../spec.js';
import { TlvError, tlv } from '../tlv.js';
import { decodeTicketFace, encodeTicketFace, isRealName, type TicketFace } from '../ticket.js';
import {
  canonicalHolder,
  checkHolderAnswer,
  HolderBindingError,
  holderBinding,
  holderRecord,
  HolderRecordError,
  newHolderRef,
  newHolderSalt,
  openHolderAnswer,
  sealHolderAnswer,
  type HolderAnswer,
  type HolderRecord,
} from './realname.js';
import { World } from '../../testing/world.js';

const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);
const LI: HolderRecord = { name: 'Li Wei', document: { type: 'id-card', number: '11010519491231002X' } };

function face(over: Partial<TicketFace> = {}): TicketFace {
  return { version: 1, operator: 'CR', tid: 'CR-20300115-000001', serviceDate: 20300115, validFrom: 1_900_000_000, validUntil: 1_900_100_000, issuedAt: 1_899_000_000, ...over };
}

describe('holder record', () => {
  it('is normalised: NFC and trimmed, so one person gives one canonical form', () => {
    const decomposed = holderRecord({ name: '  Zoe\u0301 ', document: { type: 'passport', number: 'E1234567' } });
    expect(decomposed.name).toBe('Zoé');
    expect(hex(canonicalHolder(decomposed))).toBe(hex(canonicalHolder(holderRecord({ name: 'Zoé', document: { type: 'passport', number: 'E1234567' } }))));
  });

  it('canonical form: sorted keys, no whitespace, photo in base64', () => {
    const h = holderRecord({ ...LI, photo: JPEG });
    expect(Buffer.from(canonicalHolder(h)).toString('utf8')).toBe(`{"document":{"number":"11010519491231002X","type":"id-card"},"name":"Li Wei","photo":"${Buffer.from(JPEG).toString('base64')}"}`);
  });

  it('refuses a bad field with HolderRecordError naming the field and never its value', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ document: LI.document }, /holder name must be text/],
      [{ name: 'x'.repeat(65), document: LI.document }, /name is longer than 64/],
      [{ name: 'Li\u0007Wei', document: LI.document }, /name has characters/],
      [{ name: 'Li Wei', document: { type: 'id card', number: '1' } }, /document type has characters/],
      [{ name: 'Li Wei', document: { type: 'id-card', number: '1'.repeat(33) } }, /document number is longer than 32/],
      [{ name: 'Li Wei', document: { type: 'id-card', number: '<script>' } }, /document number has characters/],
      [{ ...LI, photo: 'not base64!' }, /photo must be base64/],
      [{ ...LI, photo: Buffer.from('GIF89a....').toString('base64') }, /JPEG or PNG/],
      [{ ...LI, photo: new Uint8Array(32 * 1024 + 1).fill(0xff) }, /larger than 32768 bytes/],
    ];
    for (const [input, message] of cases) {
      let err: unknown;
      try {
        holderRecord(input as never);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HolderRecordError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toMatch(/Li Wei|11010519491231002X|script/);
    }
  });
});

describe('holder binding (face field 96)', () => {
  it('is SHA-256 over the context, salt, length-prefixed operator and TID, and the canonical record', () => {
    const salt = fromHex('000102030405060708090A0B0C0D0E0F');
    const expected = createHash('sha256')
      .update(concat(utf8('ETKT HOLDER 1'), salt, new Uint8Array([2]), utf8('CR'), new Uint8Array([18]), utf8('CR-20300115-000001'), utf8('{"document":{"number":"11010519491231002X","type":"id-card"},"name":"Li Wei"}')))
      .digest('hex')
      .toUpperCase();
    expect(hex(holderBinding(salt, 'CR', 'CR-20300115-000001', LI))).toBe(expected);
  });

  it('differs for another TID, another operator, another salt or another person', () => {
    const salt = newHolderSalt();
    const b = hex(holderBinding(salt, 'CR', 'T1', LI));
    expect(hex(holderBinding(salt, 'CR', 'T2', LI))).not.toBe(b);
    expect(hex(holderBinding(salt, 'CX', 'T1', LI))).not.toBe(b);
    expect(hex(holderBinding(newHolderSalt(), 'CR', 'T1', LI))).not.toBe(b);
    expect(hex(holderBinding(salt, 'CR', 'T1', { ...LI, document: { type: 'id-card', number: '110105194912310021' } }))).not.toBe(b);
  });
});

describe('ticket face fields 95 holderRef and 96 holderBinding', () => {
  it('round-trip inside TF_A', () => {
    const f = face({ holderRef: newHolderRef(), holderBinding: new Uint8Array(32).fill(7) });
    const back = decodeTicketFace(encodeTicketFace(f));
    expect(back).toEqual(f);
    expect(isRealName(back)).toBe(true);
    expect(isRealName(face({ passenger: 'Li Wei' }))).toBe(false);
  });

  it('a real-name face with a passenger name, or with one of the two fields, is refused both ways', () => {
    expect(() => encodeTicketFace(face({ holderRef: newHolderRef(), holderBinding: new Uint8Array(32), passenger: 'Li Wei' }))).toThrow(/carries no passenger name/);
    expect(() => encodeTicketFace(face({ holderRef: newHolderRef() }))).toThrow(/go together/);
    const raw = tlv(T.TICKET_FACE, new RecordCodec<TicketFace>('raw face', protocol.ticketFace).encode(face({ holderRef: newHolderRef(), holderBinding: new Uint8Array(32), passenger: 'Li Wei' })));
    expect(() => decodeTicketFace(raw)).toThrow(TlvError);
  });

  it('a wrong length is refused (16 and 32 bytes exactly)', () => {
    expect(() => encodeTicketFace(face({ holderRef: new Uint8Array(15), holderBinding: new Uint8Array(32) }))).toThrow(/holderRef must be 16\.\.16 bytes/);
    expect(() => encodeTicketFace(face({ holderRef: new Uint8Array(16), holderBinding: new Uint8Array(33) }))).toThrow(/holderBinding must be 32\.\.32 bytes/);
  });

  it('a card loads a real-name ticket and shows 95/96 to the gate, and refuses (6A80) a real-name face with a name', async () => {
    const world = World.create('rsa');
    const { session, issuing, credentials, card } = await world.newCard();
    const today = Number(new Date(world.now * 1000).toISOString().slice(0, 10).replace(/-/g, ''));
    const f = world.ticketServer.createTicket({ serviceDate: today, origin: 'BJS', holderRef: newHolderRef(), holderBinding: new Uint8Array(32).fill(1) });
    await issuing.load(world.authority.issue(f, credentials).sealed);
    const gate = world.checkingTerminal(session);
    await gate.select();
    const view = await gate.verifyTicket({ tid: f.tid });
    expect(hex(view.face.holderRef!)).toBe(hex(f.holderRef!));
    expect(view.face.passenger).toBeUndefined();

    // A face the authority signed although it breaks the rule (a bug or a forgery in the back office).
    const bad = tlv(T.TICKET_FACE, new RecordCodec<TicketFace>('raw face', protocol.ticketFace).encode({ ...f, card: credentials.serial.slice(), tid: `${f.tid}-X`, passenger: 'Li Wei' }));
    const tfv = world.authority.sign(f, credentials); // a signature over another face: the format check comes first
    const sealed = seal(getSuite('rsa'), world.keys.cardTrust.encryptionKey(credentials), credentials.serial, encodeLoadPayload(bad, tfv.verificationCodeEncoded));
    const before = hex(card.image);
    const err = await issuing.load(sealed).catch((e) => e);
    expect(err).toBeInstanceOf(CardStatusError);
    expect((err as CardStatusError).sw).toBe(0x6a80);
    expect(hex(card.image)).toBe(before);
  });
});

describe('the answer sealed to a terminal', () => {
  const salt = newHolderSalt();
  const ref = newHolderRef();
  const challenge = newHolderRef();
  const f = face({ holderRef: ref, holderBinding: holderBinding(salt, 'CR', 'CR-20300115-000001', LI) });
  const answer = (over: Partial<HolderAnswer> = {}): HolderAnswer => ({
    format: 'eticket-holder/1', operator: 'CR', tid: f.tid, holderRef: hex(ref), challenge: hex(challenge), terminal: 'gate-1', salt: hex(salt), holder: { name: LI.name, document: LI.document }, readsLeft: 2, expiresAt: f.validUntil, ...over,
  });

  for (const suite of ['rsa', 'sm9'] as const) {
    it(`${suite}: opens with the terminal's key only, and checks against the face`, () => {
      const kgc = suite === 'sm9' ? KeyGenerationCentre.create() : undefined;
      const key = suite === 'rsa' ? RsaPrivateKey.generate(2048) : kgc!.decrypter('eticket:terminal:CR:gate-1');
      const other = suite === 'rsa' ? RsaPrivateKey.generate(2048) : kgc!.decrypter('eticket:terminal:CR:gate-2');
      const sealed = sealHolderAnswer(suite, key.publicKey, answer());
      expect(Buffer.from(sealed).includes(Buffer.from('Li Wei'))).toBe(false);
      const opened = openHolderAnswer(key, sealed);
      expect(checkHolderAnswer(opened, f, challenge)).toEqual(LI);
      expect(() => openHolderAnswer(other, sealed)).toThrow(CryptoError);
      const tampered = sealed.slice();
      tampered[tampered.length - 40] ^= 1;
      expect(() => openHolderAnswer(key, tampered)).toThrow(CryptoError);
    });
  }

  it('a record swapped to another ticket fails the binding check', () => {
    // The service answers for ticket B with the record (and salt) that was bound to ticket A.
    const saltA = newHolderSalt();
    const fB = face({ tid: 'CR-20300115-000002', holderRef: ref, holderBinding: holderBinding(newHolderSalt(), 'CR', 'CR-20300115-000002', { name: 'Wang Fang', document: { type: 'id-card', number: '110105198001010011' } }) });
    const swapped = answer({ tid: fB.tid, salt: hex(saltA) });
    expect(() => checkHolderAnswer(swapped, fB, challenge)).toThrow(HolderBindingError);
    expect(() => checkHolderAnswer(swapped, fB, challenge)).toThrow(/does not match the binding on ticket CR-20300115-000002/);
  });

  it('an answer for another ticket, another reference or another request is refused', () => {
    expect(() => checkHolderAnswer(answer({ tid: 'CR-OTHER' }), f, challenge)).toThrow(HolderBindingError);
    expect(() => checkHolderAnswer(answer({ holderRef: hex(newHolderRef()) }), f, challenge)).toThrow(/not for CR\/CR-20300115-000001/);
    expect(() => checkHolderAnswer(answer(), f, newHolderRef())).toThrow(/replayed answer/);
    expect(() => checkHolderAnswer(answer({ holder: { name: 'Li Wej', document: LI.document } }), f, challenge)).toThrow(HolderBindingError);
  });
});
