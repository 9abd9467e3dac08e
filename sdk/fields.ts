// Encodes and decodes flat TLV records (TF_A, TF_B) and ordered command templates (B3, B6, B4) from the
// field tables in apdu-spec, so the spec's tags, lengths and formats are the ones enforced: edit the spec, the codec follows.

import { concat, fromUtf8, readUint, utf8 } from './bytes.js';
import { InvalidInputError } from './errors.js';
import { protocol, type SpecField } from './spec.js';
import { putHeader, putTlv, readTlv, tlv, TlvError, tlvSize, type TlvPlace } from './tlv.js';

/** UTF-8 text from a card or a command: a malformed byte sequence is malformed data (TlvError), not a TypeError. */
export function textField(bytes: Uint8Array, what: string): string {
  try {
    return fromUtf8(bytes);
  } catch {
    throw new TlvError(`${what} is not valid UTF-8`);
  }
}

/** A record field's value: numbers (uint, date, time), text, and raw bytes (format bytes). */
export type FieldValue = number | string | Uint8Array;

interface CompiledField extends SpecField {
  tagByte: number;
  min: number;
  max: number;
}

export class RecordCodec<T extends Record<string, FieldValue | undefined>> {
  private readonly fields: CompiledField[];
  // Read once per codec, not per record: each tag's field and the names a record may have.
  private readonly tagIndex: Map<number, number>;
  private readonly names: Set<string>;

  constructor(readonly what: string, fields: SpecField[]) {
    this.fields = fields.map((f) => {
      const [lo, hi] = (f.length ?? '0..65535').split('..').map(Number);
      return { ...f, tagByte: parseInt(f.tag, 16), min: lo, max: hi ?? lo };
    });
    this.tagIndex = new Map(this.fields.map((f, i) => [f.tagByte, i]));
    if (this.tagIndex.size !== this.fields.length) throw new Error(`${what}: two fields share a tag`);
    this.names = new Set(this.fields.map((f) => f.name));
  }

  /**
   * Canonical encoding: fields in tag order, absent optional fields omitted. Throws InvalidInputError. Every value
   * is checked first (field by field, then the record's keys, as the field-by-field encoding did), then the TLVs
   * are written into one buffer sized for them: no array per number, per TLV and for the join (a card encodes a
   * usage record every tap).
   */
  encode(record: T): Uint8Array {
    const values: (FieldValue | undefined)[] = new Array(this.fields.length);
    for (let k = 0; k < values.length; k++) values[k] = record[this.fields[k].name];
    return this.encodeFields(values, record);
  }

  /**
   * encode with the record's values given by field (the spec's order, `values[k]` of field k): for callers that name
   * them (encodeUsageRecord), so no value is read by a key taken from a list. `record` is the record itself, whose
   * keys are checked as encode checks them. With `outerTag`: tlv(outerTag, the encoding), in one buffer.
   */
  encodeFields(values: readonly (FieldValue | undefined)[], record: T, outerTag?: number): Uint8Array {
    const n = this.fields.length;
    const bytes: (Uint8Array | undefined)[] = new Array(n);
    let size = 0;
    for (let k = 0; k < n; k++) {
      const f = this.fields[k];
      const v = values[k];
      if (v === undefined || v === null) {
        if (f.required) throw new InvalidInputError(`${this.what}: ${f.name} is required`);
        continue;
      }
      const b = this.checkValue(f, v);
      bytes[k] = b;
      size += tlvSize(f.tagByte, b === undefined ? f.max : b.length);
    }
    for (const key of Object.keys(record)) {
      if (record[key] !== undefined && !this.names.has(key)) {
        throw new InvalidInputError(`${this.what}: unknown field ${key}`);
      }
    }
    // With `outerTag`, the record's template around it (tag and length first) in the same buffer.
    const out = new Uint8Array(outerTag === undefined ? size : tlvSize(outerTag, size));
    let o = outerTag === undefined ? 0 : putHeader(out, 0, outerTag, size);
    for (let k = 0; k < n; k++) {
      const f = this.fields[k];
      const v = values[k];
      if (v === undefined || v === null) continue;
      const b = bytes[k];
      o = b === undefined ? putUint(out, putHeader(out, o, f.tagByte, f.max), v as number, f.max) : putTlv(out, o, f.tagByte, b);
    }
    return out;
  }

  /**
   * Strict decoding of the content of the record's template; throws TlvError. The checks and their order are
   * TlvMap's and then this codec's (malformed TLV, unknown tag, duplicate, order, missing, length, value), done
   * over arrays indexed by field: no Map and no list per tag (a gate decodes two usage records a tap).
   */
  decode(content: Uint8Array): T {
    const values = this.decodeFields(content);
    const out: Record<string, FieldValue> = {};
    for (let k = 0; k < values.length; k++) if (values[k] !== undefined) out[this.fields[k].name] = values[k]!;
    return out as T;
  }

  /** decode's values by field (the spec's order), undefined for an absent optional field: for callers that name them. */
  decodeFields(content: Uint8Array): (FieldValue | undefined)[] {
    const n = this.fields.length;
    const tags: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    const at: TlvPlace = { tag: 0, start: 0, end: 0 };
    for (let o = 0; o < content.length; o = at.end) {
      readTlv(content, o, at);
      tags.push(at.tag);
      starts.push(at.start);
      ends.push(at.end);
    }
    const item: number[] = new Array(n).fill(-1);
    for (let i = 0; i < tags.length; i++) {
      const k = this.tagIndex.get(tags[i]);
      if (k === undefined) throw new TlvError(`unexpected tag ${tags[i].toString(16).toUpperCase()}`);
      if (item[k] >= 0) throw new TlvError(`duplicate tag ${tags[i].toString(16).toUpperCase()}`);
      item[k] = i;
    }
    for (let i = 1; i < tags.length; i++) if (tags[i] <= tags[i - 1]) throw new TlvError(`${this.what}: fields out of canonical order`);
    const values: (FieldValue | undefined)[] = new Array(n).fill(undefined);
    for (let k = 0; k < n; k++) {
      const f = this.fields[k];
      const i = item[k];
      if (i < 0) {
        if (f.required) throw new TlvError(`${this.what}: missing ${f.name}`);
        continue;
      }
      const length = ends[i] - starts[i];
      if (length < f.min || length > f.max) {
        throw new TlvError(`${this.what}: ${f.name} has ${length} bytes, expected ${f.min}..${f.max}`);
      }
      values[k] = this.decodeValue(f, content, starts[i], ends[i]);
    }
    return values;
  }

  /** Checks `v` against field `f`'s format: the value's bytes (text, bytes), or undefined for a number (written as `f.max` bytes). */
  private checkValue(f: CompiledField, v: FieldValue): Uint8Array | undefined {
    switch (f.format) {
      case 'uint':
      case 'date':
      case 'time': {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** (8 * f.max)) {
          throw new InvalidInputError(`${this.what}: ${f.name} must be an integer 0..${2 ** (8 * f.max) - 1}, got ${v}`);
        }
        if (f.format === 'date' && !isValidDate(v)) throw new InvalidInputError(`${this.what}: ${f.name} ${v} is not a YYYYMMDD date`);
        return undefined;
      }
      case 'text': {
        if (typeof v !== 'string') throw new InvalidInputError(`${this.what}: ${f.name} must be text`);
        const b = utf8(v);
        if (b.length < f.min || b.length > f.max) {
          throw new InvalidInputError(`${this.what}: ${f.name} must be ${f.min}..${f.max} bytes of UTF-8, got ${b.length}`);
        }
        return b;
      }
      case 'bytes': {
        if (!(v instanceof Uint8Array)) throw new InvalidInputError(`${this.what}: ${f.name} must be bytes`);
        if (v.length < f.min || v.length > f.max) throw new InvalidInputError(`${this.what}: ${f.name} must be ${f.min}..${f.max} bytes, got ${v.length}`);
        return v;
      }
      default:
        throw new InvalidInputError(`${this.what}: field format ${f.format} not supported in records`);
    }
  }

  /** The value of field `f` at data[start, end), read where it lies. */
  private decodeValue(f: CompiledField, data: Uint8Array, start: number, end: number): FieldValue {
    // A copy: the record must not alias the buffer it was decoded from (card NVM, a response).
    if (f.format === 'bytes') return data.slice(start, end);
    if (f.format === 'text') {
      try {
        return fromUtf8(data.subarray(start, end));
      } catch {
        throw new TlvError(`${this.what}: ${f.name} is not valid UTF-8`);
      }
    }
    if (end - start < 1 || end - start > 6) throw new InvalidInputError(`integer of ${end - start} bytes`);
    let n = 0;
    for (let i = start; i < end; i++) n = n * 256 + data[i];
    if (f.format === 'date' && !isValidDate(n)) throw new TlvError(`${this.what}: ${f.name} ${n} is not a YYYYMMDD date`);
    return n;
  }
}

/** `v` (a checked integer) as `size` big-endian bytes at `o` of `out`; returns the offset after them. */
function putUint(out: Uint8Array, o: number, v: number, size: number): number {
  let n = v;
  for (let i = size - 1; i >= 0; i--) {
    out[o + i] = n % 256;
    n = Math.floor(n / 256);
  }
  return o + size;
}

export function isValidDate(yyyymmdd: number): boolean {
  const y = Math.floor(yyyymmdd / 10000);
  const m = Math.floor(yyyymmdd / 100) % 100;
  const d = yyyymmdd % 100;
  if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  return d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

/** YYYYMMDD of a Date (UTC). */
export function toServiceDate(date: Date): number {
  return date.getUTCFullYear() * 10000 + (date.getUTCMonth() + 1) * 100 + date.getUTCDate();
}

/** The service date before `yyyymmdd` (calendar arithmetic: a service date has no time of day or zone). */
export function previousServiceDate(yyyymmdd: number): number {
  const y = Math.floor(yyyymmdd / 10000);
  const m = Math.floor(yyyymmdd / 100) % 100;
  return toServiceDate(new Date(Date.UTC(y, m - 1, (yyyymmdd % 100) - 1)));
}

/** Parse "2026-11-22" or "20261122". */
export function parseServiceDate(text: string): number {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(text.trim());
  const n = m ? Number(m[1] + m[2] + m[3]) : NaN;
  if (!m || !isValidDate(n)) throw new InvalidInputError(`not a date (YYYY-MM-DD): "${text}"`);
  return n;
}

/** A service date (YYYYMMDD number) as YYYY-MM-DD. */
export function formatServiceDate(n: number): string {
  const s = String(n);
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
}

/** A field of an ordered template: a spec data object (tag, format, length) and the record key it fills. */
export interface SequenceField<K extends string = string> {
  key: K;
  /** Spec name of the data object, e.g. "CARD_CHALLENGE". */
  name: string;
  tag: number;
  format: SpecField['format'];
  min: number;
  max: number;
}

export type SequenceValue = number | string | Uint8Array;

/** The field `key` of a template, typed by the spec's data object `name` (its tag, format and length). */
export function specField<K extends string>(key: K, name: string): SequenceField<K> {
  const d = protocol.dataObjects.find((o) => o.name === name);
  if (!d) throw new Error(`apdu-spec has no data object named ${name}`);
  const [lo, hi] = (d.length ?? '0..65535').split('..').map(Number);
  return { key, name, tag: parseInt(d.tag, 16), format: d.format, min: lo, max: hi ?? lo };
}

/** One field's value as its TLV; throws InvalidInputError when the value does not fit the spec's format. */
export function encodeSequenceField(f: SequenceField, v: SequenceValue): Uint8Array {
  const b = checkSequenceValue(f, v);
  if (b !== undefined) return tlv(f.tag, b);
  const out = new Uint8Array(tlvSize(f.tag, f.max));
  putUint(out, putHeader(out, 0, f.tag, f.max), v as number, f.max);
  return out;
}

/**
 * The TLVs of `fields` in order, from the values `values` names by key, then `tail` (already encoded), in one buffer
 * sized first: the bytes of concat(...fields.map((f) => encodeSequenceField(f, values[f.key])), tail) with the same
 * checks in the same order (and `missing`'s error for an undefined value, when given), without an array per field.
 */
export function encodeSequence<K extends string>(
  fields: readonly SequenceField<K>[],
  values: { readonly [key in K]?: SequenceValue },
  missing?: (f: SequenceField<K>) => Error,
  tail?: Uint8Array,
): Uint8Array {
  const n = fields.length;
  const bytes: (Uint8Array | undefined)[] = new Array(n);
  let size = tail === undefined ? 0 : tail.length;
  for (let i = 0; i < n; i++) {
    const f = fields[i];
    const v = values[f.key];
    if (v === undefined && missing) throw missing(f);
    const b = checkSequenceValue(f, v as SequenceValue);
    bytes[i] = b;
    size += tlvSize(f.tag, b === undefined ? f.max : b.length);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const f = fields[i];
    const b = bytes[i];
    o = b === undefined ? putUint(out, putHeader(out, o, f.tag, f.max), values[f.key] as number, f.max) : putTlv(out, o, f.tag, b);
  }
  if (tail !== undefined) out.set(tail, o);
  return out;
}

/** encodeSequenceField's checks: the value's bytes (text, bytes), or undefined for an integer (written as `f.max` bytes). */
function checkSequenceValue(f: SequenceField, v: SequenceValue): Uint8Array | undefined {
  switch (f.format) {
    case 'uint':
    case 'time':
    case 'date':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** (8 * f.max)) throw new InvalidInputError(`${f.name} must be an integer of ${f.max} byte(s), got ${String(v)}`);
      return undefined;
    case 'text': {
      if (typeof v !== 'string') throw new InvalidInputError(`${f.name} must be text`);
      const b = utf8(v);
      if (b.length < f.min || b.length > f.max) throw new InvalidInputError(`${f.name} must be ${f.min}..${f.max} bytes of UTF-8, got ${b.length}`);
      return b;
    }
    default:
      if (!(v instanceof Uint8Array)) throw new InvalidInputError(`${f.name} must be bytes`);
      if (v.length < f.min || v.length > f.max) throw new InvalidInputError(`${f.name} must be ${f.min}..${f.max} bytes, got ${v.length}`);
      return v;
  }
}

/** One field's value from its raw bytes; throws TlvError (malformed data) when it breaks the spec's format. */
export function decodeSequenceField(f: SequenceField, raw: Uint8Array): SequenceValue {
  return sequenceValueAt(f, raw, 0, raw.length);
}

/** Field `f`'s value from bytes start..end of `bytes` (decodeSequenceField without a subarray for an integer). */
function sequenceValueAt(f: SequenceField, bytes: Uint8Array, start: number, end: number): SequenceValue {
  const length = end - start;
  if (length < f.min || length > f.max) throw new TlvError(`${f.name}: ${length} bytes, expected ${f.min}..${f.max}`);
  if (f.format === 'text') return textField(bytes.subarray(start, end), f.name);
  if (f.format === 'uint' || f.format === 'time' || f.format === 'date') {
    // readUint's answer, read in place
    if (length < 1 || length > 6) throw new InvalidInputError(`integer of ${length} bytes`);
    let v = 0;
    for (let k = start; k < end; k++) v = v * 256 + bytes[k];
    return v;
  }
  return bytes.subarray(start, end);
}

/**
 * Strictly decode a template's content against an ordered field list: exactly these tags, in this order,
 * nothing else, each within its spec length. Returns the values by key and where each field's TLV lies.
 * Every TLV is read first (a malformed one throws before any field is looked at), then the tags are compared with
 * the list, then each value is decoded: the order of the checks, so a message has one error whatever its faults.
 */
export function decodeSequence<K extends string>(fields: readonly SequenceField<K>[], content: Uint8Array, what: string): { values: Record<K, SequenceValue>; ends: number[] } {
  const n = fields.length;
  const starts: number[] = [];
  const ends: number[] = [];
  const at: TlvPlace = { tag: 0, start: 0, end: 0 };
  let same = true;
  for (let o = 0, i = 0; o < content.length; o = at.end, i++) {
    readTlv(content, o, at);
    if (i >= n || at.tag !== fields[i].tag) same = false;
    starts.push(at.start);
    ends.push(at.end);
  }
  if (!same || ends.length !== n) {
    throw new TlvError(`${what}: fields missing, extra or out of order (expected ${fields.map((f) => f.tag.toString(16).toUpperCase()).join(' ')})`);
  }
  const values = {} as Record<K, SequenceValue>;
  for (let i = 0; i < n; i++) {
    const f = fields[i];
    values[f.key] = sequenceValueAt(f, content, starts[i], ends[i]);
  }
  return { values, ends };
}
