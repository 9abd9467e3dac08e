// Unit tests of the byte-level codecs: APDU cases 1-4 short and extended (ISO/IEC 7816-3 §12.1),
// strict BER-TLV, and AES-CMAC against the RFC 4493 known answers.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApduFormatError, encodeCommand, parseCommand, parseResponse } from './apdu.js';
import { concat, fromHex, hex } from './bytes.js';
import { cbcDecrypt, cbcEncrypt, cmac, padM2, unpadM2 } from './crypto/aes.js';
import { decodeAll, TlvError, TlvMap, tlv } from './tlv.js';
import { CryptoError, InvalidInputError } from './errors.js';
import { isValidDate, parseServiceDate } from './fields.js';
import { decodeTicketFace, decodeUsageRecordContent, encodeTicketFace, encodeUsageRecord, type TicketFace } from './ticket.js';

describe('APDU codec', () => {
  it.each([
    ['case 1', '00A40400', { nc: 0, ne: undefined, extended: false }],
    ['case 2S, Le=00 means 256', '00C0000000', { nc: 0, ne: 256, extended: false }],
    ['case 3S', '00A4040002AABB', { nc: 2, ne: undefined, extended: false }],
    ['case 4S', '00A4040002AABB10', { nc: 2, ne: 16, extended: false }],
    ['case 2E, Le=0000 means 65536', '80CA00D6000000', { nc: 0, ne: 65536, extended: true }],
    ['case 3E', '805000000000 02AABB', { nc: 2, ne: undefined, extended: true }],
    ['case 4E', '805000000000 02AABB 0100', { nc: 2, ne: 256, extended: true }],
  ])('parses %s', (_n, h, want) => {
    const c = parseCommand(fromHex(h));
    expect({ nc: c.data.length, ne: c.ne, extended: c.extended }).toEqual(want);
  });

  it.each([
    ['3-byte header', '00A404'],
    ['Lc longer than data', '00A4040005AABB'],
    ['Lc shorter than data', '00A4040001AABB1011'],
    ['extended Lc of zero', '00A404000000000001'],
    ['truncated extended length', '00A4040000 01'],
    ['extended Lc mismatch', '805000000000 05AABB'],
  ])('refuses %s', (_n, h) => {
    expect(() => parseCommand(fromHex(h))).toThrow(ApduFormatError);
  });

  it('encode then parse is the identity for every case, short and extended', () => {
    fc.assert(
      fc.property(
        fc.record({
          cla: fc.integer({ min: 0, max: 255 }),
          ins: fc.integer({ min: 0, max: 255 }),
          p1: fc.integer({ min: 0, max: 255 }),
          p2: fc.integer({ min: 0, max: 255 }),
          data: fc.uint8Array({ maxLength: 600 }),
          ne: fc.option(fc.integer({ min: 1, max: 65536 }), { nil: undefined }),
          extended: fc.boolean(),
        }),
        (c) => {
          const p = parseCommand(encodeCommand(c));
          expect([p.cla, p.ins, p.p1, p.p2]).toEqual([c.cla, c.ins, c.p1, c.p2]);
          expect(hex(p.data)).toBe(hex(c.data));
          expect(p.ne).toBe(c.ne);
          // A case 1 APDU has no length field, so there is nothing to make extended.
          const hasLength = c.data.length > 0 || c.ne !== undefined;
          expect(p.extended).toBe(hasLength && (c.extended || c.data.length > 255 || (c.ne ?? 0) > 256));
        },
      ),
    );
  });

  it('a response needs its status word', () => {
    expect(parseResponse(fromHex('AABB9000'))).toEqual({ data: fromHex('AABB'), sw: 0x9000 });
    expect(() => parseResponse(new Uint8Array([0x90]))).toThrow(ApduFormatError);
  });
});

describe('BER-TLV', () => {
  it('encodes one-, two- and three-byte lengths minimally and round-trips', () => {
    for (const n of [0, 127, 128, 255, 256, 65535]) {
      const e = tlv(0xdf20, new Uint8Array(n));
      const [t] = decodeAll(e);
      expect(t.tag).toBe(0xdf20);
      expect(t.value.length).toBe(n);
    }
    expect(hex(tlv(0x80, new Uint8Array(128))).slice(0, 6)).toBe('808180');
  });

  it.each([
    ['truncated value', '8005AABB'],
    ['truncated length', '8081'],
    ['non-minimal 81 form', '808105AABBCCDDEE'],
    ['non-minimal 82 form', '80820005AABBCCDDEE'],
    ['indefinite length', '8080'],
    ['tag 00', '0001AA'],
    ['tag longer than 3 bytes', '9F8181810100'],
  ])('refuses %s', (_n, h) => {
    expect(() => decodeAll(fromHex(h))).toThrow(TlvError);
  });

  it('refuses duplicates and unexpected tags unless allowed', () => {
    const twice = fromHex('8001AA8001BB');
    expect(() => TlvMap.parse(twice)).toThrow(/duplicate/);
    expect(TlvMap.parse(twice, { repeatable: [0x80] }).all(0x80).length).toBe(2);
    expect(() => TlvMap.parse(fromHex('8101AA'), { allowed: [0x80] })).toThrow(/unexpected/);
  });
});

describe('AES-CMAC (RFC 4493 test vectors)', () => {
  const key = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
  const msg = fromHex(
    '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
  );
  it.each([
    [0, 'bb1d6929e95937287fa37d129b756746'],
    [16, '070a16b46b4d4144f79bdd9dd04a287c'],
    [40, 'dfa66747de9ae63030ca32611497c827'],
    [64, '51f0bebf7e3b9d92fc49741779363cfe'],
  ])('Mlen %i', (len, tag) => {
    expect(hex(cmac(key, msg.subarray(0, len)))).toBe(tag.toUpperCase());
  });

  it('CBC with ISO 9797-1 method 2 padding round-trips and rejects bad padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (m) => {
        const iv = new Uint8Array(16);
        expect(hex(cbcDecrypt(key, iv, cbcEncrypt(key, iv, m)))).toBe(hex(m));
        expect(hex(unpadM2(padM2(m)))).toBe(hex(m));
      }),
    );
    expect(() => unpadM2(new Uint8Array(16))).toThrow(CryptoError);
    expect(() => unpadM2(new Uint8Array(16))).toThrow(/^bad padding$/);
  });
});

describe('ticket face', () => {
  const face: TicketFace = {
    version: 1, operator: 'CR', tid: 'CR-1', serviceDate: 20261122, train: 'G1', origin: 'BJS', destination: 'SHH', departure: 540,
    coach: '05', seat: '12A', travelClass: '2', fare: 55300, currency: 'CNY', validFrom: 1, validUntil: 2, passenger: '李伟', issuedAt: 3, flags: 1, kind: 1, maxEntries: 1,
  };
  it('round-trips every field, including UTF-8 names', () => {
    expect(decodeTicketFace(encodeTicketFace(face))).toEqual(face);
  });
  it('refuses out-of-range fields with a message naming the field', () => {
    expect(() => encodeTicketFace({ ...face, seat: 'X'.repeat(9) })).toThrow(/seat/);
    expect(() => encodeTicketFace({ ...face, serviceDate: 20261332 })).toThrow(/serviceDate/);
    expect(() => encodeTicketFace({ ...face, fare: -1 })).toThrow(/fare/);
  });
  it('parses dates strictly', () => {
    expect(parseServiceDate('2026-02-28')).toBe(20260228);
    expect(() => parseServiceDate('2026-02-30')).toThrow(InvalidInputError);
    expect(() => parseServiceDate('2026-02-30')).toThrow(/not a date \(YYYY-MM-DD\): "2026-02-30"/);
    expect(isValidDate(20240229)).toBe(true);
    expect(isValidDate(20230229)).toBe(false);
  });
});

describe('usage record A3 decoding (RecordCodec without TlvMap)', () => {
  const usage = { entries: 1, temporaryExits: 0, state: 1, flags: 0, lastGate: 'G1', lastStation: 'BJS', lastTime: 1767225600, counter: 2 };
  const content = () => decodeAll(encodeUsageRecord(usage))[0].value;
  const items = () => decodeAll(content());
  const join = (list: { tag: number; value: Uint8Array }[]) => concat(...list.map((t) => tlv(t.tag, t.value)));

  it('round-trips every field, and an absent last gate and station read as empty text', () => {
    expect(decodeUsageRecordContent(content())).toEqual(usage);
    const bare = items().filter((t) => t.tag !== items()[4].tag && t.tag !== items()[5].tag);
    expect(decodeUsageRecordContent(join(bare))).toEqual({ ...usage, lastGate: '', lastStation: '' });
  });

  it('refuses, with the TlvError naming it: an unknown tag, a duplicate, fields out of order, a missing field, a bad length, a truncated TLV', () => {
    const list = items();
    expect(() => decodeUsageRecordContent(join([...list, { tag: 0x9f, value: new Uint8Array(1) }]))).toThrow(/unexpected tag 9F/);
    expect(() => decodeUsageRecordContent(join([list[0], list[0], ...list.slice(1)]))).toThrow(/duplicate tag/);
    expect(() => decodeUsageRecordContent(join([list[1], list[0], ...list.slice(2)]))).toThrow(/out of canonical order/);
    expect(() => decodeUsageRecordContent(join(list.slice(1)))).toThrow(TlvError);
    expect(() => decodeUsageRecordContent(join([{ tag: list[0].tag, value: new Uint8Array(9) }, ...list.slice(1)]))).toThrow(/entries has 9 bytes/);
    expect(() => decodeUsageRecordContent(content().subarray(0, content().length - 1))).toThrow(/truncated TLV/);
    expect(() => decodeUsageRecordContent(join([...list.slice(0, 4), { tag: list[4].tag, value: Uint8Array.of(0xff) }, ...list.slice(5)]))).toThrow(/lastGate is not valid UTF-8/);
  });
});
