// Encodes and decodes flat TLV records (TF_A, TF_B) and ordered command templates (B3, B6, B4) from the
// field tables in apdu-spec, so the spec's tags, lengths and formats are the ones enforced: edit the spec, the codec follows.

import { concat, fromUtf8, readUint, utf8 } from './bytes.js';
import { InvalidInputError } from './errors.js';
import { protocol, type SpecField } from './spec.js';
import { decodeOne, TlvMap, tlv, TlvError } from './tlv.js';

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
  // Read once per codec, not per record: the tags a record may hold and the names it may have.
  private readonly tags: number[];
  private readonly names: Set<string>;

  constructor(readonly what: string, fields: SpecField[]) {
    this.fields = fields.map((f) => {
      const [lo, hi] = (f.length ?? '0..65535').split('..').map(Number);
      return { ...f, tagByte: parseInt(f.tag, 16), min: lo, max: hi ?? lo };
    });
    this.tags = this.fields.map((f) => f.tagByte);
    this.names = new Set(this.fields.map((f) => f.name));
  }

  /** Canonical encoding: fields in tag order, absent optional fields omitted. Throws InvalidInputError. */
  encode(record: T): Uint8Array {
    const parts: Uint8Array[] = [];
    for (const f of this.fields) {
      const v = record[f.name];
      if (v === undefined || v === null) {
        if (f.required) throw new InvalidInputError(`${this.what}: ${f.name} is required`);
        continue;
      }
      parts.push(tlv(f.tagByte, this.encodeValue(f, v)));
    }
    for (const key of Object.keys(record)) {
      if (record[key] !== undefined && !this.names.has(key)) {
        throw new InvalidInputError(`${this.what}: unknown field ${key}`);
      }
    }
    return concat(...parts);
  }

  /** Strict decoding of the content of the record's template; throws TlvError. */
  decode(content: Uint8Array): T {
    const map = TlvMap.parse(content, { allowed: this.tags });
    const out: Record<string, FieldValue> = {};
    let lastTag = -1;
    for (const item of map.items) {
      if (item.tag <= lastTag) throw new TlvError(`${this.what}: fields out of canonical order`);
      lastTag = item.tag;
    }
    for (const f of this.fields) {
      const raw = map.get(f.tagByte);
      if (raw === undefined) {
        if (f.required) throw new TlvError(`${this.what}: missing ${f.name}`);
        continue;
      }
      if (raw.length < f.min || raw.length > f.max) {
        throw new TlvError(`${this.what}: ${f.name} has ${raw.length} bytes, expected ${f.min}..${f.max}`);
      }
      out[f.name] = this.decodeValue(f, raw);
    }
    return out as T;
  }

  private encodeValue(f: CompiledField, v: FieldValue): Uint8Array {
    switch (f.format) {
      case 'uint':
      case 'date':
      case 'time': {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** (8 * f.max)) {
          throw new InvalidInputError(`${this.what}: ${f.name} must be an integer 0..${2 ** (8 * f.max) - 1}, got ${v}`);
        }
        if (f.format === 'date' && !isValidDate(v)) throw new InvalidInputError(`${this.what}: ${f.name} ${v} is not a YYYYMMDD date`);
        const b = new Uint8Array(f.max);
        let n = v;
        for (let i = f.max - 1; i >= 0; i--) {
          b[i] = n % 256;
          n = Math.floor(n / 256);
        }
        return b;
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

  private decodeValue(f: CompiledField, raw: Uint8Array): FieldValue {
    // A copy: the record must not alias the buffer it was decoded from (card NVM, a response).
    if (f.format === 'bytes') return raw.slice();
    if (f.format === 'text') {
      try {
        return fromUtf8(raw);
      } catch {
        throw new TlvError(`${this.what}: ${f.name} is not valid UTF-8`);
      }
    }
    const n = readUint(raw);
    if (f.format === 'date' && !isValidDate(n)) throw new TlvError(`${this.what}: ${f.name} ${n} is not a YYYYMMDD date`);
    return n;
  }
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
  switch (f.format) {
    case 'uint':
    case 'time':
    case 'date': {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** (8 * f.max)) throw new InvalidInputError(`${f.name} must be an integer of ${f.max} byte(s), got ${String(v)}`);
      const b = new Uint8Array(f.max);
      let n = v;
      for (let i = f.max - 1; i >= 0; i--) {
        b[i] = n % 256;
        n = Math.floor(n / 256);
      }
      return tlv(f.tag, b);
    }
    case 'text': {
      if (typeof v !== 'string') throw new InvalidInputError(`${f.name} must be text`);
      const b = utf8(v);
      if (b.length < f.min || b.length > f.max) throw new InvalidInputError(`${f.name} must be ${f.min}..${f.max} bytes of UTF-8, got ${b.length}`);
      return tlv(f.tag, b);
    }
    default: {
      if (!(v instanceof Uint8Array)) throw new InvalidInputError(`${f.name} must be bytes`);
      if (v.length < f.min || v.length > f.max) throw new InvalidInputError(`${f.name} must be ${f.min}..${f.max} bytes, got ${v.length}`);
      return tlv(f.tag, v);
    }
  }
}

/** One field's value from its raw bytes; throws TlvError (malformed data) when it breaks the spec's format. */
export function decodeSequenceField(f: SequenceField, raw: Uint8Array): SequenceValue {
  if (raw.length < f.min || raw.length > f.max) throw new TlvError(`${f.name}: ${raw.length} bytes, expected ${f.min}..${f.max}`);
  if (f.format === 'text') return textField(raw, f.name);
  if (f.format === 'uint' || f.format === 'time' || f.format === 'date') return readUint(raw);
  return raw;
}

/**
 * Strictly decode a template's content against an ordered field list: exactly these tags, in this order,
 * nothing else, each within its spec length. Returns the values by key and where each field's TLV lies.
 */
export function decodeSequence<K extends string>(fields: readonly SequenceField<K>[], content: Uint8Array, what: string): { values: Record<K, SequenceValue>; ends: number[] } {
  const items: { tag: number; value: Uint8Array }[] = [];
  const ends: number[] = [];
  for (let o = 0; o < content.length; ) {
    const { tlv: item, next } = decodeOne(content, o);
    items.push(item);
    ends.push((o = next));
  }
  let same = items.length === fields.length;
  for (let i = 0; same && i < items.length; i++) same = items[i].tag === fields[i].tag;
  if (!same) {
    throw new TlvError(`${what}: fields missing, extra or out of order (expected ${fields.map((f) => f.tag.toString(16).toUpperCase()).join(' ')})`);
  }
  const values = {} as Record<K, SequenceValue>;
  fields.forEach((f, i) => (values[f.key] = decodeSequenceField(f, items[i].value)));
  return { values, ends };
}
