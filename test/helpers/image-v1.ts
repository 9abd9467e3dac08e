// Card images as image format version 1 wrote them (one SHA-256 over header and body, no record checksums), made
// from a version 2 image: what a card personalised before version 2 holds, for the tests that it still opens.

import { createHash } from 'node:crypto';
import { decodeOne } from '../../sdk/tlv.js';

const OVERHEAD = 45;

/** The same state in image version 1: the body without its record checksums (DE), the whole-image checksum. */
export function toImageVersion1(v2: Uint8Array): Uint8Array {
  if (v2[8] !== 2) throw new Error(`not an image of version 2 (version ${v2[8]})`);
  const kept: Uint8Array[] = [];
  for (let o = OVERHEAD; o < v2.length; ) {
    const { tlv, next } = decodeOne(v2, o);
    if (tlv.tag !== 0xde) kept.push(v2.subarray(o, next));
    o = next;
  }
  const n = kept.reduce((a, b) => a + b.length, 0);
  const out = new Uint8Array(OVERHEAD + n);
  out.set(v2.subarray(0, 8), 0);
  out[8] = 1;
  new DataView(out.buffer).setUint32(9, n);
  let o = OVERHEAD;
  for (const k of kept) {
    out.set(k, o);
    o += k.length;
  }
  out.set(createHash('sha256').update(out.subarray(0, 13)).update(out.subarray(OVERHEAD)).digest(), 13);
  return out;
}
