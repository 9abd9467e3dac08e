// The command modules as hex tables: each encoder's exact bytes for known fields, and the strict decoders
// refusing (TlvError, the card's 6A80) every malformation the card must refuse, from one field list.

import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../bytes.js';
import { TlvError } from '../tlv.js';
import { USAGE_EVENT } from '../spec.js';
import { decodeCapacity, decodeInstalledKeys, encodeCapacity, encodeInstalledKeys } from './get-data.js';
import { decodeLoadAnswer, encodeLoadAnswer } from './load.js';
import { decodeDiversifiedKey, decodeKeyGrant, encodeDiversifiedKey, encodeKeyGrant } from './put-key.js';
import { encodeFci, parseFci } from './select.js';
import { decodeReadQuery, encodeReadQuery } from './read.js';
import { decodeUsageCommand, encodeUsageBody, encodeUsageCommand, usageFieldList, type UsageCommandFields } from './usage-command.js';
import { buildSessionView, decodeSessionView, decodeVerifyQuery, encodeSessionView, encodeVerifyQuery, sessionViewHead } from './verify.js';
import { encodeReceipt, encodeReceiptBody, parseReceipt, receiptSignedBytes } from '../receipt.js';

const KEY_ID = fromHex('0102030405060708');
const CHALLENGE = fromHex('A1A2A3A4A5A6A7A8');
const DIGEST = new Uint8Array(32).fill(0xd1);
const FIELDS: UsageCommandFields = { keyId: KEY_ID, cardChallenge: CHALLENGE, tid: 'T1', counter: 3, event: USAGE_EVENT.EXIT, gateId: 'G7', station: 'BJS', time: 0x69000000, viewDigest: DIGEST };

describe('WRITE USAGE / DELETE (usage-command.ts)', () => {
  it.each([
    ['WRITE USAGE', 'pki', `C1080102030405060708 C708A1A2A3A4A5A6A7A8 C5025431 CA020003 CB0103 CC024737 CD03424A53 CE0469000000 DF2120${'D1'.repeat(32)}`],
    ['DELETE', 'pki', `C1080102030405060708 C708A1A2A3A4A5A6A7A8 C5025431 CA020003 CC024737 CD03424A53 CE0469000000 DF2120${'D1'.repeat(32)}`],
    ['WRITE USAGE', 'sym', 'C708A1A2A3A4A5A6A7A8 C5025431 CA020003 CB0103 CC024737 CD03424A53 CE0469000000'],
    ['DELETE', 'sym', 'C708A1A2A3A4A5A6A7A8 C5025431 CA020003 CC024737 CD03424A53 CE0469000000'],
  ] as const)('%s in gate mode %s: the body is the field list in spec order', (name, mode, body) => {
    expect(hex(encodeUsageBody(name, mode, FIELDS))).toBe(body.replace(/ /g, ''));
  });

  it('decodes what it encodes: fields, the authenticated body and the authenticator', () => {
    const body = encodeUsageBody('WRITE USAGE', 'pki', FIELDS);
    const d = decodeUsageCommand('WRITE USAGE', 'pki', encodeUsageCommand('pki', body, fromHex('5151')));
    expect(d.fields).toEqual(FIELDS);
    expect(hex(d.body)).toBe(hex(body));
    expect(hex(d.authenticator)).toBe('5151');
    const { viewDigest: _d, keyId: _k, ...symFields } = FIELDS;
    expect(decodeUsageCommand('DELETE', 'sym', encodeUsageCommand('sym', encodeUsageBody('DELETE', 'sym', symFields), new Uint8Array(8))).fields.event).toBe(USAGE_EVENT.DELETED);
  });

  const sym = (body: string, mac = '0000000000000000') => fromHex(`B6${hex(new Uint8Array([(body.length + mac.length) / 2 + 2]))}${body}8E${hex(new Uint8Array([mac.length / 2]))}${mac}`);
  const base = 'C708A1A2A3A4A5A6A7A8C5025431CA020003';
  it.each([
    ['fields out of order (TID after the counter)', `C708A1A2A3A4A5A6A7A8CA020003C5025431CB0101CC024737CD03424A53CE0469000000`],
    ['the event missing from a WRITE USAGE', `${base}CC024737CD03424A53CE0469000000`],
    ['an unknown event', `${base}CB0109CC024737CD03424A53CE0469000000`],
    ['a gate id of 17 bytes', `${base}CB0101CC11${'41'.repeat(17)}CD03424A53CE0469000000`],
    ['a TID that is not UTF-8', `C708A1A2A3A4A5A6A7A8C502FFFECA020003CB0101CC024737CD03424A53CE0469000000`],
    ['a card challenge of 7 bytes', `C707A1A2A3A4A5A6A7C5025431CA020003CB0101CC024737CD03424A53CE0469000000`],
  ])('refuses %s (TlvError)', (_, body) => {
    expect(() => decodeUsageCommand('WRITE USAGE', 'sym', sym(body))).toThrow(TlvError);
  });

  it('refuses a DELETE carrying an event, a MAC of 7 bytes, trailing bytes, and the other mode\'s template', () => {
    const del = `${base}CB0101CC024737CD03424A53CE0469000000`;
    expect(() => decodeUsageCommand('DELETE', 'sym', sym(del))).toThrow(TlvError);
    expect(() => decodeUsageCommand('WRITE USAGE', 'sym', sym(`${base}CB0101CC024737CD03424A53CE0469000000`, '00000000000000'))).toThrow(TlvError);
    const ok = encodeUsageCommand('sym', encodeUsageBody('WRITE USAGE', 'sym', FIELDS), new Uint8Array(8));
    expect(() => decodeUsageCommand('WRITE USAGE', 'sym', fromHex(hex(ok) + '00'))).toThrow(TlvError);
    expect(() => decodeUsageCommand('WRITE USAGE', 'pki', ok)).toThrow(TlvError);
  });

  it('the field list names the spec data objects, C1 and DF21 only in pki and CB only in WRITE USAGE', () => {
    expect(usageFieldList('WRITE USAGE', 'pki').map((f) => f.name)).toEqual(['KEY_ID', 'CARD_CHALLENGE', 'TID', 'COUNTER', 'USAGE_EVENT', 'GATE_ID', 'STATION', 'TIME', 'VIEW_DIGEST']);
    expect(usageFieldList('DELETE', 'sym').map((f) => f.name)).toEqual(['CARD_CHALLENGE', 'TID', 'COUNTER', 'GATE_ID', 'STATION', 'TIME']);
  });
});

describe('receipts (sdk/receipt.ts)', () => {
  const FACE = new Uint8Array(32).fill(0xfa);
  const body = encodeReceiptBody({ cardSerial: fromHex('0011223344556677'), tid: 'T1', faceDigest: FACE, event: USAGE_EVENT.DELETED, counter: 4 });
  it('encodes C6 C5 DF20 CB CA and parses it back with the bytes its MAC covers', () => {
    expect(hex(body)).toBe(`C6080011223344556677C5025431DF2020${'FA'.repeat(32)}CB01FFCA020004`);
    const encoded = encodeReceipt(body, { mac: fromHex('0102030405060708') });
    const r = parseReceipt(encoded);
    expect(r).toMatchObject({ version: 2, tid: 'T1', event: USAGE_EVENT.DELETED, counter: 4, usage: undefined, commandDigest: undefined });
    expect(hex(r.faceDigest!)).toBe('FA'.repeat(32));
    expect(hex(r.mac!)).toBe('0102030405060708');
    expect(hex(receiptSignedBytes(encoded))).toBe(hex(body));
  });

  it.each([
    ['both a MAC and a signature', `${hex(body)}9E0101 8E080102030405060708`],
    ['neither', hex(body)],
    ['the MAC not last', `8E080102030405060708${hex(body)}`],
    ['a serial of 7 bytes', `C70800112233445566C5025431CB01FFCA0200048E080102030405060708`.replace('C708', 'C607')],
    ['a face digest of 31 bytes', `C6080011223344556677C5025431DF211F${'FA'.repeat(31)}CB01FFCA0200048E080102030405060708`.replace('DF211F', 'DF201F')],
  ])('refuses a receipt with %s (TlvError)', (_, content) => {
    const c = fromHex(content.replace(/ /g, ''));
    expect(() => parseReceipt(fromHex(`B4${hex(new Uint8Array([c.length]))}${hex(c)}`))).toThrow(TlvError);
  });
});

describe('queries, answers and objects', () => {
  it('READ and VERIFY queries round-trip; VERIFY needs a TID or a date, not both', () => {
    const rt = new Uint8Array(16).fill(7);
    expect(decodeReadQuery(encodeReadQuery({ keyId: KEY_ID, date: 20260101, train: 'G1' }))).toEqual({ keyId: KEY_ID, terminalChallenge: undefined, date: 20260101, train: 'G1' });
    expect(decodeVerifyQuery(encodeVerifyQuery({ keyId: KEY_ID, terminalChallenge: rt, criteria: { tid: 'X' } })).criteria).toEqual({ tid: 'X' });
    expect(hex(encodeVerifyQuery({ keyId: KEY_ID, terminalChallenge: rt, criteria: { date: 20260101, station: 'BJS' } }))).toBe(`C1080102030405060708C410${'07'.repeat(16)}C20401352505CD03424A53`);
    expect(() => decodeVerifyQuery(fromHex(`C1080102030405060708C410${'07'.repeat(16)}C5015AC20401352505`))).toThrow(TlvError);
    expect(() => decodeVerifyQuery(fromHex(`C1080102030405060708C410${'07'.repeat(16)}`))).toThrow(TlvError);
  });

  it('the card builds B5 in one buffer with the bytes of sessionViewHead + encodeSessionView, its MAC over exactly the head', () => {
    for (const n of [16, 112, 288, 4096]) {
      const masked = new Uint8Array(16).map((_, i) => i);
      const cryptogram = new Uint8Array(n).map((_, i) => (i * 7) & 0xff);
      const seen: Uint8Array[] = [];
      const built = buildSessionView(masked, CHALLENGE, cryptogram, (h) => {
        seen.push(h.slice());
        return new Uint8Array(8).fill(h.length & 0xff);
      });
      const head = sessionViewHead(masked, CHALLENGE, cryptogram);
      expect(hex(seen[0])).toBe(hex(head));
      expect(hex(built.encoded)).toBe(hex(encodeSessionView(head, built.mac)));
      expect(hex(decodeSessionView(built.encoded).mac)).toBe(hex(built.mac));
    }
    expect(() => buildSessionView(new Uint8Array(16), CHALLENGE, new Uint8Array(16), () => new Uint8Array(16))).toThrow(RangeError);
  });

  it('the sym VERIFY answer B5: DF24 C7 85 8E exactly (no clear serial), the head is what the MAC covers', () => {
    const masked = new Uint8Array(16).fill(0x3c);
    const head = sessionViewHead(masked, CHALLENGE, new Uint8Array(16));
    const b5 = decodeSessionView(encodeSessionView(head, new Uint8Array(8).fill(1)));
    expect(hex(b5.head)).toBe(hex(head));
    expect(hex(b5.maskedSerial)).toBe('3C'.repeat(16));
    expect(hex(b5.cryptogram)).toBe('00'.repeat(16));
    const reordered = fromHex(`B53A C708A1A2A3A4A5A6A7A8 DF2410${'3C'.repeat(16)} 8510${'00'.repeat(16)} 8E08${'01'.repeat(8)}`.replace(/ /g, ''));
    expect(() => decodeSessionView(reordered)).toThrow(TlvError);
    const clearSerial = fromHex(`B52C C6080011223344556677 C708A1A2A3A4A5A6A7A8 8510${'00'.repeat(16)} 8E08${'01'.repeat(8)}`.replace(/ /g, ''));
    expect(() => decodeSessionView(clearSerial)).toThrow(TlvError);
  });

  it('FCI, LOAD answer, capacity, installed keys and key objects round-trip; malformed ones are TlvError', () => {
    expect(parseFci(encodeFci({ suite: 1, lifecycle: 7 }))).toEqual({ suite: 'rsa', lifecycle: 'OPERATIONAL', protocolVersion: 2 });
    expect(hex(encodeFci({ suite: 1, lifecycle: 7 }))).toBe('6F16 8409F0455449434B455401 A509 D10101 D70107 DA0102'.replace(/ /g, ''));
    expect(() => parseFci(encodeFci({ suite: 9, lifecycle: 7 }))).toThrow(TlvError);
    // A v1 FCI (serial in A5) is refused: a v2 host never takes a card's word for more than it needs.
    expect(() => parseFci(fromHex('6F1E8409F0455449434B455401A511C6080011223344556677D10101D70107DA0101'))).toThrow(TlvError);
    expect(decodeLoadAnswer(encodeLoadAnswer({ sequenceNumber: 5, tid: 'T1' }))).toEqual({ sequenceNumber: 5, tid: 'T1' });
    const cap = { totalBytes: 32768, freeBytes: 100, tickets: 3, tombstones: 1 };
    expect(decodeCapacity(encodeCapacity(cap))).toEqual(cap);
    expect(() => decodeCapacity(new Uint8Array(3))).toThrow(TlvError);
    const keys = [{ kind: 'authority' as const, keyId: KEY_ID }, { kind: 'diversified' as const, keyId: KEY_ID }];
    expect(decodeInstalledKeys(encodeInstalledKeys(keys))).toEqual(keys);
    expect(() => decodeInstalledKeys(fromHex('090102030405060708'))).toThrow(TlvError);
    expect(decodeKeyGrant(encodeKeyGrant({ keyId: KEY_ID, scopes: ['CR', '*'], key: fromHex('AA') }))).toEqual({ keyId: KEY_ID, scopes: ['CR', '*'], key: fromHex('AA') });
    expect(() => decodeKeyGrant(fromHex('C1080102030405060708D001AA'))).toThrow(/operator scope/);
    const sym = { keyId: KEY_ID, operator: 'CR', key: new Uint8Array(16).fill(1), privacyKey: new Uint8Array(16).fill(2) };
    expect(hex(encodeDiversifiedKey(sym))).toBe(`C1080102030405060708 C9024352 D010${'01'.repeat(16)} DF2510${'02'.repeat(16)}`.replace(/ /g, ''));
    expect(decodeDiversifiedKey(encodeDiversifiedKey(sym))).toEqual(sym);
    expect(() => decodeDiversifiedKey(encodeDiversifiedKey({ ...sym, operator: '*' }))).toThrow(/one named operator/);
    // Without K_priv (the v1 object) or with D0 and DF25 swapped: malformed.
    expect(() => decodeDiversifiedKey(fromHex(`C1080102030405060708C9024352D010${'01'.repeat(16)}`))).toThrow(TlvError);
    expect(() => decodeDiversifiedKey(fromHex(`C1080102030405060708C9024352DF2510${'02'.repeat(16)}D010${'01'.repeat(16)}`))).toThrow(TlvError);
  });
});
