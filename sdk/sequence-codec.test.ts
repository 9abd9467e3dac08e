// The one-buffer codecs of the tap (issue 16, fifth pass) against the field-by-field encodings they replace: the
// usage command body (encodeSequence), the receipt body, A3 and the face (RecordCodec.encode), and the strict
// decoding of WRITE USAGE / DELETE (decodeUsageCommand), on arbitrary values and arbitrarily damaged commands.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concat, fromUtf8, hex, readUint, u32, utf8 } from './bytes.js';
import { encodeQuery, type QueryFields } from './commands/query.js';
import { decodeUsageCommand, encodeUsageBody, encodeUsageCommand, usageFieldItems, usageFieldList, type GateMode, type UsageCommandFields, type UsageCommandName } from './commands/usage-command.js';
import { InvalidInputError } from './errors.js';
import { decodeSequenceField, encodeSequence, encodeSequenceField, specField, type SequenceField, type SequenceValue } from './fields.js';
import { encodeReceiptBody } from './receipt.js';
import { protocol, T } from './spec.js';
import { encodeTicketFace, encodeUsageRecord, type UsageRecord } from './ticket.js';
import { decodeOne, TlvError, TlvMap, tlv } from './tlv.js';

/** What a call gave: its bytes, or its error's class and message. */
function outcome(f: () => Uint8Array): string {
  try {
    return hex(f());
  } catch (e) {
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
}

/** Any value a field might be given, valid or not: integers in and out of range, text of any length (some non-ASCII), bytes, nothing. */
const anyValue: fc.Arbitrary<SequenceValue | undefined> = fc.oneof(
  fc.integer({ min: -2, max: 2 ** 32 + 2 }),
  fc.constantFrom(0, 1, 255, 256, 65535, 65536, 0.5, Number.NaN),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.uint8Array({ maxLength: 40 }),
  fc.constant(undefined),
);

/** Values that fit each field of `list` (and sometimes not: `anyValue` in one field). */
function fieldValues(list: readonly SequenceField[]): fc.Arbitrary<Record<string, SequenceValue | undefined>> {
  const fit = (f: SequenceField): fc.Arbitrary<SequenceValue> =>
    f.format === 'text'
      ? fc.string({ unit: 'grapheme-ascii', minLength: f.min, maxLength: f.max })
      : f.format === 'bytes'
        ? fc.uint8Array({ minLength: f.min, maxLength: f.max })
        : fc.integer({ min: 0, max: Math.min(2 ** (8 * f.max) - 1, 2 ** 31) });
  return fc.tuple(fc.tuple(...list.map(fit)), fc.option(fc.tuple(fc.nat(list.length - 1), anyValue), { nil: undefined })).map(([values, damage]) => {
    const out: Record<string, SequenceValue | undefined> = {};
    list.forEach((f, i) => (out[f.key] = values[i]));
    if (damage) out[list[damage[0]].key] = damage[1];
    return out;
  });
}

const COMMANDS: [UsageCommandName, GateMode][] = [
  ['WRITE USAGE', 'pki'],
  ['WRITE USAGE', 'sym'],
  ['DELETE', 'pki'],
  ['DELETE', 'sym'],
];

describe('encodeSequence: one buffer, the bytes and errors of the field-by-field encoding', () => {
  it.each(COMMANDS)('%s in gate mode %s: encodeUsageBody is concat(usageFieldItems) on arbitrary values, errors included', (name, mode) => {
    fc.assert(
      fc.property(fieldValues(usageFieldList(name, mode)), (v) => {
        const fields = v as unknown as UsageCommandFields;
        expect(outcome(() => encodeUsageBody(name, mode, fields))).toBe(outcome(() => concat(...usageFieldItems(name, mode, fields))));
      }),
      { numRuns: 300 },
    );
  });

  it('the receipt body is concat(encodeSequenceField per field, A3) on arbitrary values, errors included', () => {
    const list = ['CARD_SERIAL', 'TID', 'FACE_DIGEST', 'USAGE_EVENT', 'COUNTER'].map((n, i) => specField(['cardSerial', 'tid', 'faceDigest', 'event', 'counter'][i], n));
    const usage: UsageRecord = { entries: 1, temporaryExits: 0, state: 1, flags: 0, lastGate: 'G1', lastStation: 'BJS', lastTime: 1767225600, counter: 2 };
    fc.assert(
      fc.property(fieldValues(list), fc.boolean(), (v, withUsage) => {
        const f = { ...v, usage: withUsage ? usage : undefined } as unknown as Parameters<typeof encodeReceiptBody>[0];
        const reference = () => concat(...list.map((d) => encodeSequenceField(d, v[d.key] as SequenceValue)), withUsage ? encodeUsageRecord(usage) : new Uint8Array(0));
        expect(outcome(() => encodeReceiptBody(f))).toBe(outcome(reference));
      }),
      { numRuns: 300 },
    );
  });

  it('writes a tail after the fields, and names a missing field with the caller\'s error', () => {
    const list = [specField('tid', 'TID'), specField('counter', 'COUNTER')];
    expect(hex(encodeSequence(list, { tid: 'T1', counter: 3 }, undefined, Uint8Array.of(0xaa)))).toBe('C5025431CA020003AA');
    expect(() => encodeSequence(list, { tid: 'T1' }, (f) => new InvalidInputError(`needs ${f.key}`))).toThrow(/needs counter/);
  });
});

/** A record as the field-by-field RecordCodec encoded it (before the fifth pass): canonical order, absent fields left out. */
function referenceRecord(fields: typeof protocol.usageRecord, record: Record<string, unknown>): Uint8Array {
  return concat(
    ...fields.flatMap((f) => {
      const v = record[f.name];
      if (v === undefined) return [];
      const [lo, hi] = (f.length ?? '0..65535').split('..').map(Number);
      const size = hi ?? lo;
      if (f.format === 'text') return [tlv(parseInt(f.tag, 16), utf8(v as string))];
      if (f.format === 'bytes') return [tlv(parseInt(f.tag, 16), v as Uint8Array)];
      const b = new Uint8Array(size);
      let n = v as number;
      for (let i = size - 1; i >= 0; i--) {
        b[i] = n % 256;
        n = Math.floor(n / 256);
      }
      return [tlv(parseInt(f.tag, 16), b)];
    }),
  );
}

describe('RecordCodec.encode in one buffer', () => {
  const usageRecord = fc.record({
    entries: fc.integer({ min: 0, max: 255 }),
    temporaryExits: fc.integer({ min: 0, max: 255 }),
    state: fc.integer({ min: 0, max: 255 }),
    flags: fc.integer({ min: 0, max: 255 }),
    lastGate: fc.string({ unit: 'grapheme-ascii', maxLength: 16 }),
    lastStation: fc.string({ unit: 'grapheme-ascii', maxLength: 16 }),
    lastTime: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    counter: fc.integer({ min: 0, max: 65535 }),
  });

  it('A3 is the TLVs of its fields in canonical order, as the field-by-field encoding wrote them', () => {
    fc.assert(
      fc.property(usageRecord, (u) => {
        expect(hex(encodeUsageRecord(u))).toBe(hex(tlv(T.USAGE_RECORD, referenceRecord(protocol.usageRecord, u))));
      }),
      { numRuns: 500 },
    );
  });

  it('a face with optional fields left out and UTF-8 text encodes as the reference does', () => {
    const face = { version: 1, operator: 'CR', tid: 'CR-1', serviceDate: 20261122, train: 'G1', origin: 'BJS', destination: 'SHH', departure: 540, fare: 55300, currency: 'CNY', validFrom: 1, validUntil: 2, passenger: '李伟', issuedAt: 3, flags: 1, kind: 1, maxEntries: 1 };
    expect(hex(encodeTicketFace(face))).toBe(hex(tlv(T.TICKET_FACE, referenceRecord(protocol.ticketFace, face))));
  });

  it('refuses what the field-by-field encoding refused, naming the field: out of range, wrong type, too long, unknown', () => {
    const u: UsageRecord = { entries: 1, temporaryExits: 0, state: 1, flags: 0, lastGate: 'G1', lastStation: 'BJS', lastTime: 1767225600, counter: 2 };
    expect(() => encodeUsageRecord({ ...u, entries: 256 })).toThrow(InvalidInputError);
    expect(() => encodeUsageRecord({ ...u, entries: 256 })).toThrow(/usage record: entries must be an integer 0..255, got 256/);
    expect(() => encodeUsageRecord({ ...u, lastGate: 'G'.repeat(17) })).toThrow(/lastGate must be 0..16 bytes of UTF-8, got 17/);
    expect(() => encodeUsageRecord({ ...u, counter: 'x' as unknown as number })).toThrow(/counter must be an integer/);
    expect(() => encodeUsageRecord({ ...u, extra: 1 } as unknown as UsageRecord)).toThrow(/unknown field extra/);
    // A field's error comes before an unknown key's, as before.
    expect(() => encodeUsageRecord({ ...u, entries: -1, extra: 1 } as unknown as UsageRecord)).toThrow(/entries must be/);
  });
});

/** decodeUsageCommand as it was before the fifth pass: TlvMap for the template, decodeOne per field, a rest and a spread. */
function referenceDecode(name: UsageCommandName, mode: GateMode, data: Uint8Array) {
  const tag = mode === 'pki' ? T.SIGNED_COMMAND : T.MACED_COMMAND;
  const content = TlvMap.parse(data, { allowed: [tag] }).require(tag);
  const list: SequenceField[] = [...usageFieldList(name, mode), mode === 'pki' ? specField('authenticator', 'SIGNATURE') : specField('authenticator', 'MAC')];
  const items: { tag: number; value: Uint8Array }[] = [];
  const ends: number[] = [];
  for (let o = 0; o < content.length; ) {
    const { tlv: item, next } = decodeOne(content, o);
    items.push(item);
    ends.push((o = next));
  }
  let same = items.length === list.length;
  for (let i = 0; same && i < items.length; i++) same = items[i].tag === list[i].tag;
  if (!same) throw new TlvError(`${name} command: fields missing, extra or out of order (expected ${list.map((f) => f.tag.toString(16).toUpperCase()).join(' ')})`);
  const values: Record<string, SequenceValue> = {};
  list.forEach((f, i) => (values[f.key] = decodeSequenceField(f, items[i].value)));
  const { authenticator, ...rest } = values;
  const event = name === 'DELETE' ? 0xff : (rest.event as number);
  if (name === 'WRITE USAGE' && !protocol.usageEvents.some((e) => e.value === event && e.name !== 'DELETED')) throw new TlvError(`unknown usage event ${event}`);
  return { fields: { ...rest, event }, body: content.subarray(0, ends[ends.length - 2]), authenticator };
}

describe('decodeUsageCommand: the checks and errors of the generic decoding', () => {
  const fields: UsageCommandFields = { keyId: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), cardChallenge: Uint8Array.of(0xa1, 2, 3, 4, 5, 6, 7, 8), tid: 'T1', counter: 3, event: 1, gateId: 'G7', station: 'BJS', time: 1761000000, viewDigest: new Uint8Array(32).fill(0xd1) };
  const decoded = (f: () => ReturnType<typeof referenceDecode>) => {
    try {
      const d = f();
      return { fields: Object.fromEntries(Object.entries(d.fields).map(([k, v]) => [k, (v as unknown) instanceof Uint8Array ? hex(v as unknown as Uint8Array) : v])), body: hex(d.body), authenticator: hex(d.authenticator as Uint8Array) };
    } catch (e) {
      return `${(e as Error).constructor.name}: ${(e as Error).message}`;
    }
  };

  it.each(COMMANDS)('%s in gate mode %s: any damage to a well-formed command gives what the generic decoding gives', (name, mode) => {
    const { event, ...rest } = fields;
    const v = name === 'DELETE' ? rest : { ...rest, event };
    const good = encodeUsageCommand(mode, encodeUsageBody(name, mode, v), new Uint8Array(mode === 'pki' ? 64 : 8).fill(0x5a));
    expect(decoded(() => decodeUsageCommand(name, mode, good) as ReturnType<typeof referenceDecode>)).toEqual(decoded(() => referenceDecode(name, mode, good)));
    const damaged = fc.oneof(
      // bytes changed in place
      fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }).map((edits) => {
        const b = good.slice();
        for (const [i, x] of edits) b[i] = x;
        return b;
      }),
      // cut short, or bytes appended
      fc.nat(good.length).map((n) => good.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 4 }).map((tail) => concat(good, tail)),
      // the other gate mode's template, or nothing at all
      fc.constant(mode === 'pki' ? concat(Uint8Array.of(T.MACED_COMMAND), good.subarray(1)) : concat(Uint8Array.of(T.SIGNED_COMMAND), good.subarray(1))),
      fc.constant(new Uint8Array(0)),
    );
    fc.assert(
      fc.property(damaged, (data) => {
        const got = decoded(() => decodeUsageCommand(name, mode, data) as ReturnType<typeof referenceDecode>);
        expect(got).toEqual(decoded(() => referenceDecode(name, mode, data)));
        if (typeof got === 'string') expect(got).toMatch(/^TlvError: /);
      }),
      { numRuns: 1000 },
    );
  });

  it('reads text and numbers as the spec says: the TID as UTF-8, the time as four bytes big-endian', () => {
    const d = decodeUsageCommand('WRITE USAGE', 'sym', encodeUsageCommand('sym', encodeUsageBody('WRITE USAGE', 'sym', fields), new Uint8Array(8)));
    expect(d.fields.tid).toBe(fromUtf8(utf8('T1')));
    expect(d.fields.time).toBe(1761000000);
    expect(readUint(Uint8Array.of(0x68, 0xf6, 0xba, 0x40))).toBe(1761000000);
    expect(hex(d.body)).toContain('CE0468F6BA40');
    expect(d.fields).not.toHaveProperty('keyId');
    expect(d.fields).not.toHaveProperty('viewDigest');
  });
});

describe('encodeQuery in one buffer', () => {
  /** The query as it was encoded before the fifth pass: one TLV per field, concatenated. */
  const reference = (q: QueryFields) => {
    const text = (tag: number, v?: string) => (v === undefined ? new Uint8Array(0) : tlv(tag, utf8(v)));
    return concat(
      tlv(T.KEY_ID, q.keyId),
      q.terminalChallenge ? tlv(T.TERMINAL_CHALLENGE, q.terminalChallenge) : new Uint8Array(0),
      text(T.TID, q.tid),
      q.date !== undefined ? tlv(T.SERVICE_DATE, u32(q.date)) : new Uint8Array(0),
      text(T.TRAIN, q.train),
      text(T.STATION, q.station),
    );
  };
  it('gives the bytes of the TLV-by-TLV encoding for any fields, present or not (empty text, non-ASCII, any date)', () => {
    const text = fc.option(fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 10 })), { nil: undefined });
    const query = fc.record({ keyId: fc.uint8Array({ maxLength: 20 }), terminalChallenge: fc.option(fc.uint8Array({ maxLength: 20 }), { nil: undefined }), tid: text, date: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { nil: undefined }), train: text, station: text });
    fc.assert(
      fc.property(query, (q) => {
        expect(hex(encodeQuery(q))).toBe(hex(reference(q)));
      }),
      { numRuns: 1000 },
    );
  });
});
