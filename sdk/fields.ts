// Encodes and decodes flat TLV records (TF_A, TF_B) from the field tables in apdu-spec, so the
// spec's tags, lengths and required flags are the ones enforced: edit the spec, the codec follows.

import { concat, fromUtf8, readUint, utf8 } from './bytes.js';
import { InvalidInputError } from './errors.js';
import type { SpecField } from './spec.js';
import { TlvMap, tlv, TlvError } from './tlv.js';

export type FieldValue = number | string;

interface CompiledField extends SpecField {
  tagByte: number;
  min: number;
  max: number;
}

export class RecordCodec<T extends Record<string, FieldValue | undefined>> {
  private readonly fields: CompiledField[];

  constructor(readonly what: string, fields: SpecField[]) {
    this.fields = fields.map((f) => {
      const [lo, hi] = (f.length ?? '0..65535').split('..').map(Number);
      return { ...f, tagByte: parseInt(f.tag, 16), min: lo, max: hi ?? lo };
    });
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
      if (record[key] !== undefined && !this.fields.some((f) => f.name === key)) {
        throw new InvalidInputError(`${this.what}: unknown field ${key}`);
      }
    }
    return concat(...parts);
  }

  /** Strict decoding of the content of the record's template; throws TlvError. */
  decode(content: Uint8Array): T {
    const map = TlvMap.parse(content, { allowed: this.fields.map((f) => f.tagByte) });
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
      default:
        throw new InvalidInputError(`${this.what}: field format ${f.format} not supported in records`);
    }
  }

  private decodeValue(f: CompiledField, raw: Uint8Array): FieldValue {
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
