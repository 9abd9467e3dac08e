// SM3-based helpers of GM/T 0044 part 2 (5.3-5.4): the hash-to-scalar functions H1/H2 and the
// counter-mode key derivation function KDF shared with SM2.

import { createHash } from 'node:crypto';
import { InvalidInputError } from '../../errors.js';
import { N, bytesToBig } from './fields.js';

export function sm3(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sm3');
  for (const x of parts) h.update(x);
  return new Uint8Array(h.digest());
}

const ctr = (i: number) => Uint8Array.of(i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff);

/**
 * Hn(Z, N) for n = 1 (H1) or 2 (H2): hlen = 8·⌈5·log2(N)/32⌉ = 320 bits, so two SM3 blocks truncated
 * to 40 bytes; the extra 64 bits over N make the reduction mod N−1 statistically uniform.
 */
function hashToRange(n: 0x01 | 0x02, z: Uint8Array): bigint {
  if (!(z instanceof Uint8Array)) throw new InvalidInputError(`H${n}: expected Uint8Array`);
  const prefix = Uint8Array.of(n);
  const ha = new Uint8Array(64);
  ha.set(sm3(prefix, z, ctr(1)), 0);
  ha.set(sm3(prefix, z, ctr(2)), 32);
  return (bytesToBig(ha.subarray(0, 40)) % (N - 1n)) + 1n;
}

/** H1(Z, N) ∈ [1, N−1]; Z = ID ‖ hid in key extraction. */
export const H1 = (z: Uint8Array): bigint => hashToRange(0x01, z);
/** H2(Z, N) ∈ [1, N−1]; Z = M ‖ w in signatures. */
export const H2 = (z: Uint8Array): bigint => hashToRange(0x02, z);

/** KDF(Z, klen) = leftmost klen bytes of SM3(Z ‖ 1) ‖ SM3(Z ‖ 2) ‖ … (32-bit big-endian counter). */
export function kdf(z: Uint8Array, klen: number): Uint8Array {
  if (!(z instanceof Uint8Array)) throw new InvalidInputError('kdf: expected Uint8Array');
  // The 32-bit counter bounds the output at (2³² − 1) blocks; far beyond any use here.
  if (!Number.isSafeInteger(klen) || klen < 0 || klen > 0xffffffff)
    throw new InvalidInputError('kdf: klen must be an integer in [0, 2^32 - 1]');
  const out = new Uint8Array(klen);
  for (let i = 1, off = 0; off < klen; i++, off += 32) {
    const block = sm3(z, ctr(i));
    out.set(block.subarray(0, Math.min(32, klen - off)), off);
  }
  return out;
}
