// BER-TLV (ISO/IEC 7816-4 / ISO 8825-1 subset): tags of 1-3 bytes, definite lengths up to 0xFFFF.
// Strict decoding: every malformed, truncated or over-long encoding is refused with TlvError.

import { concat } from './bytes.js';
import { EticketError } from './errors.js';

/** Malformed BER-TLV data. */
export class TlvError extends EticketError {}

export interface Tlv {
  tag: number;
  value: Uint8Array;
}

function encodeTag(tag: number): Uint8Array {
  if (tag <= 0xff) return new Uint8Array([tag]);
  if (tag <= 0xffff) return new Uint8Array([tag >>> 8, tag & 0xff]);
  return new Uint8Array([tag >>> 16, (tag >>> 8) & 0xff, tag & 0xff]);
}

function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([n]);
  if (n <= 0xff) return new Uint8Array([0x81, n]);
  if (n <= 0xffff) return new Uint8Array([0x82, n >>> 8, n & 0xff]);
  throw new TlvError(`TLV value of ${n} bytes is too long (max 65535)`);
}

export function tlv(tag: number, value: Uint8Array): Uint8Array {
  return concat(encodeTag(tag), encodeLength(value.length), value);
}

/** A constructed TLV from already-encoded children. */
export function template(tag: number, ...children: (Uint8Array | undefined)[]): Uint8Array {
  return tlv(tag, concat(...children.filter((c): c is Uint8Array => c !== undefined)));
}

/** Decode a sequence of TLVs that must fill `data` exactly. */
export function decodeAll(data: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let o = 0;
  while (o < data.length) {
    const { tlv: t, next } = decodeOne(data, o);
    out.push(t);
    o = next;
  }
  return out;
}

export function decodeOne(data: Uint8Array, offset = 0): { tlv: Tlv; next: number } {
  let o = offset;
  const need = (n: number, what: string) => {
    if (o + n > data.length) throw new TlvError(`truncated TLV: ${what} at offset ${o}`);
  };
  need(1, 'tag');
  let tag = data[o++];
  if (tag === 0x00 || tag === 0xff) throw new TlvError(`invalid tag byte ${tag.toString(16)} at offset ${o - 1}`);
  if ((tag & 0x1f) === 0x1f) {
    for (let i = 0; ; i++) {
      need(1, 'tag');
      const b = data[o++];
      tag = (tag << 8) | b;
      if ((b & 0x80) === 0) break;
      if (i >= 1) throw new TlvError('tag longer than 3 bytes');
    }
  }
  need(1, 'length');
  let len = data[o++];
  if (len === 0x81) {
    need(1, 'length');
    len = data[o++];
    if (len < 0x80) throw new TlvError('non-minimal length encoding');
  } else if (len === 0x82) {
    need(2, 'length');
    len = (data[o] << 8) | data[o + 1];
    o += 2;
    if (len <= 0xff) throw new TlvError('non-minimal length encoding');
  } else if (len >= 0x80) {
    throw new TlvError(`unsupported length byte ${len.toString(16)}`);
  }
  need(len, `value of tag ${tag.toString(16).toUpperCase()} (${len} bytes)`);
  return { tlv: { tag, value: data.subarray(o, o + len) }, next: o + len };
}

/**
 * A decoded template with typed accessors. Duplicate tags are refused unless declared repeatable,
 * and unknown tags are refused unless allowed, so a message has exactly one reading.
 */
export class TlvMap {
  private readonly map = new Map<number, Uint8Array[]>();

  constructor(readonly items: Tlv[], opts: { allowed?: readonly number[]; repeatable?: readonly number[] } = {}) {
    for (const t of items) {
      if (opts.allowed && !opts.allowed.includes(t.tag)) {
        throw new TlvError(`unexpected tag ${t.tag.toString(16).toUpperCase()}`);
      }
      const list = this.map.get(t.tag);
      if (list) {
        if (!opts.repeatable?.includes(t.tag)) throw new TlvError(`duplicate tag ${t.tag.toString(16).toUpperCase()}`);
        list.push(t.value);
      } else this.map.set(t.tag, [t.value]);
    }
  }

  static parse(data: Uint8Array, opts?: { allowed?: readonly number[]; repeatable?: readonly number[] }): TlvMap {
    return new TlvMap(decodeAll(data), opts);
  }

  has(tag: number): boolean {
    return this.map.has(tag);
  }

  get(tag: number): Uint8Array | undefined {
    return this.map.get(tag)?.[0];
  }

  all(tag: number): Uint8Array[] {
    return this.map.get(tag) ?? [];
  }

  require(tag: number, what?: string): Uint8Array {
    const v = this.get(tag);
    if (v === undefined) throw new TlvError(`missing ${what ?? 'tag'} (${tag.toString(16).toUpperCase()})`);
    return v;
  }

  /** Required value whose length lies in [min, max]. */
  bytes(tag: number, min: number, max: number, what?: string): Uint8Array {
    const v = this.require(tag, what);
    if (v.length < min || v.length > max) {
      throw new TlvError(`${what ?? 'tag ' + tag.toString(16).toUpperCase()}: ${v.length} bytes, expected ${min}..${max}`);
    }
    return v;
  }
}
