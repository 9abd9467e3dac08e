// Byte helpers used everywhere: hex at the edges, big-endian integers, constant-time compare.
// Bytes are Uint8Array throughout the project; Buffer appears only where node:crypto needs it.

import { timingSafeEqual } from 'node:crypto';
import { InvalidInputError } from './errors.js';

/** Upper-case hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').toUpperCase();
}

/** Bytes of a hex string (spaces allowed); InvalidInputError on anything else. */
export function fromHex(text: string): Uint8Array {
  const clean = text.replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw new InvalidInputError(`not a hex string: "${text.length > 40 ? text.slice(0, 40) + '…' : text}"`);
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i].length;
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], o);
    o += parts[i].length;
  }
  return out;
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // memcmp for anything longer than a key id: the NVM store compares whole pages on every commit.
  if (a.length > 32) return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Comparison of secrets (MACs): time independent of where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function u16(n: number): Uint8Array {
  return new Uint8Array([(n >>> 8) & 0xff, n & 0xff]);
}

export function u32(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** Unsigned big-endian integer of 1..6 bytes. */
export function readUint(bytes: Uint8Array): number {
  if (bytes.length < 1 || bytes.length > 6) throw new InvalidInputError(`integer of ${bytes.length} bytes`);
  let n = 0;
  // Indexed: for-of walks a Uint8Array through the iterator protocol (every numeric field of every message).
  for (let i = 0; i < bytes.length; i++) n = n * 256 + bytes[i];
  return n;
}

// One encoder and one strict decoder for the process: building them per call cost more than the conversion.
const UTF8_ENCODER = new TextEncoder();
const UTF8_DECODER = new TextDecoder('utf-8', { fatal: true });

/**
 * Short ASCII text (station codes, train numbers, TIDs: every tap encodes and decodes several) is converted in
 * JavaScript: a call into the encoder's native code cost more than the conversion. Anything else goes to it.
 */
const SHORT_TEXT = 64;

export function utf8(text: string): Uint8Array {
  const n = text.length;
  if (n <= SHORT_TEXT) {
    const out = new Uint8Array(n);
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      out[i] = c;
    }
    if (i === n) return out;
  }
  return UTF8_ENCODER.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n <= SHORT_TEXT) {
    let s = '';
    let i = 0;
    for (; i < n; i++) {
      const b = bytes[i];
      if (b >= 0x80) break;
      s += String.fromCharCode(b);
    }
    if (i === n) return s;
  }
  return UTF8_DECODER.decode(bytes);
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
