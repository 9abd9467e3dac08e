// BER-TLV (ISO/IEC 7816-4 / ISO 8825-1 subset): tags of 1-3 bytes, definite lengths up to 0xFFFF.
// Strict decoding: every malformed, truncated or over-long encoding is refused with TlvError.

import { EticketError } from './errors.js';

/** Malformed BER-TLV data. */
export class TlvError extends EticketError {}

export interface Tlv {
  tag: number;
  value: Uint8Array;
}

function tagSize(tag: number): number {
  return tag <= 0xff ? 1 : tag <= 0xffff ? 2 : 3;
}

function lengthSize(n: number): number {
  if (n < 0x80) return 1;
  if (n <= 0xff) return 2;
  if (n <= 0xffff) return 3;
  throw new TlvError(`TLV value of ${n} bytes is too long (max 65535)`);
}

/** Write tag and length at `o` (sizes from tagSize / lengthSize); returns the offset of the value. */
function writeHeader(out: Uint8Array, o: number, tag: number, n: number): number {
  if (tag > 0xffff) out[o++] = tag >>> 16;
  if (tag > 0xff) out[o++] = (tag >>> 8) & 0xff;
  out[o++] = tag & 0xff;
  if (n < 0x80) out[o++] = n;
  else if (n <= 0xff) {
    out[o++] = 0x81;
    out[o++] = n;
  } else {
    out[o++] = 0x82;
    out[o++] = n >>> 8;
    out[o++] = n & 0xff;
  }
  return o;
}

/**
 * For encoders that size a whole message first and allocate it once: the header (tag, length) of a TLV whose value
 * has `n` bytes, written at `o`; returns the offset after it (where the value goes).
 */
export function putHeader(out: Uint8Array, o: number, tag: number, n: number): number {
  lengthSize(n);
  return writeHeader(out, o, tag, n);
}

/** The whole TLV of `value` written at `o` (see putHeader); returns the offset after it. */
export function putTlv(out: Uint8Array, o: number, tag: number, value: Uint8Array): number {
  o = putHeader(out, o, tag, value.length);
  out.set(value, o);
  return o + value.length;
}

/** Encoded size of a TLV whose value has `n` bytes. */
export function tlvSize(tag: number, n: number): number {
  return tagSize(tag) + lengthSize(n) + n;
}

export function tlv(tag: number, value: Uint8Array): Uint8Array {
  // Sized once, allocated once: tags, lengths and values are written into the one result.
  const out = new Uint8Array(tlvSize(tag, value.length));
  out.set(value, writeHeader(out, 0, tag, value.length));
  return out;
}

/** A constructed TLV from already-encoded children (undefined ones left out), in one allocation. */
export function template(tag: number, ...children: (Uint8Array | undefined)[]): Uint8Array {
  let n = 0;
  for (let i = 0; i < children.length; i++) n += children[i]?.length ?? 0;
  const out = new Uint8Array(tlvSize(tag, n));
  let o = writeHeader(out, 0, tag, n);
  for (let i = 0; i < children.length; i++) {
    const c = children[i];
    if (c === undefined) continue;
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Decode a sequence of TLVs that must fill `data` exactly. */
export function decodeAll(data: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  const at: TlvPlace = { tag: 0, start: 0, end: 0 };
  for (let o = 0; o < data.length; o = at.end) {
    readTlv(data, o, at);
    out.push({ tag: at.tag, value: data.subarray(at.start, at.end) });
  }
  return out;
}

/** Where one TLV lies: its tag and its value's bounds in the data it was read from (readTlv fills one). */
export interface TlvPlace {
  tag: number;
  start: number;
  end: number;
}

export function decodeOne(data: Uint8Array, offset = 0): { tlv: Tlv; next: number } {
  const at = readTlv(data, offset, { tag: 0, start: 0, end: 0 });
  return { tlv: { tag: at.tag, value: data.subarray(at.start, at.end) }, next: at.end };
}

/**
 * decodeOne without making the value's view: the tag and the value's bounds are written into `at` (returned), with
 * every check decodeOne makes. For decoders that read small fields where they lie (numbers, text).
 */
export function readTlv(data: Uint8Array, offset: number, at: TlvPlace): TlvPlace {
  // Plain bounds checks, no closure: this runs for every TLV of every message and image.
  let o = offset;
  if (o >= data.length) truncated('tag', o);
  let tag = data[o++];
  if (tag === 0x00 || tag === 0xff) throw new TlvError(`invalid tag byte ${tag.toString(16)} at offset ${o - 1}`);
  if ((tag & 0x1f) === 0x1f) {
    for (let i = 0; ; i++) {
      if (o >= data.length) truncated('tag', o);
      const b = data[o++];
      tag = (tag << 8) | b;
      if ((b & 0x80) === 0) break;
      if (i >= 1) throw new TlvError('tag longer than 3 bytes');
    }
  }
  if (o >= data.length) truncated('length', o);
  let len = data[o++];
  if (len === 0x81) {
    if (o >= data.length) truncated('length', o);
    len = data[o++];
    if (len < 0x80) throw new TlvError('non-minimal length encoding');
  } else if (len === 0x82) {
    if (o + 2 > data.length) truncated('length', o);
    len = (data[o] << 8) | data[o + 1];
    o += 2;
    if (len <= 0xff) throw new TlvError('non-minimal length encoding');
  } else if (len >= 0x80) {
    throw new TlvError(`unsupported length byte ${len.toString(16)}`);
  }
  if (o + len > data.length) truncated(`value of tag ${tag.toString(16).toUpperCase()} (${len} bytes)`, o);
  at.tag = tag;
  at.start = o;
  at.end = o + len;
  return at;
}

function truncated(what: string, o: number): never {
  throw new TlvError(`truncated TLV: ${what} at offset ${o}`);
}

/**
 * A decoded template with typed accessors. Duplicate tags are refused unless declared repeatable,
 * and unknown tags are refused unless allowed, so a message has exactly one reading.
 */
export class TlvMap {
  // The first value of each tag; the later ones of a repeatable tag apart (most messages have none): no list per tag.
  private readonly first = new Map<number, Uint8Array>();
  private more: Map<number, Uint8Array[]> | undefined;

  constructor(readonly items: Tlv[], opts: { allowed?: readonly number[]; repeatable?: readonly number[] } = {}) {
    for (const t of items) {
      if (opts.allowed && !opts.allowed.includes(t.tag)) {
        throw new TlvError(`unexpected tag ${t.tag.toString(16).toUpperCase()}`);
      }
      if (this.first.has(t.tag)) {
        if (!opts.repeatable?.includes(t.tag)) throw new TlvError(`duplicate tag ${t.tag.toString(16).toUpperCase()}`);
        this.more ??= new Map();
        const list = this.more.get(t.tag);
        if (list) list.push(t.value);
        else this.more.set(t.tag, [t.value]);
      } else this.first.set(t.tag, t.value);
    }
  }

  static parse(data: Uint8Array, opts?: { allowed?: readonly number[]; repeatable?: readonly number[] }): TlvMap {
    return new TlvMap(decodeAll(data), opts);
  }

  has(tag: number): boolean {
    return this.first.has(tag);
  }

  get(tag: number): Uint8Array | undefined {
    return this.first.get(tag);
  }

  all(tag: number): Uint8Array[] {
    const v = this.first.get(tag);
    if (v === undefined) return [];
    const more = this.more?.get(tag);
    return more ? [v, ...more] : [v];
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
