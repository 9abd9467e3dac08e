// SM9 groups G1 = E(Fp): y² = x³ + 5 and G2 ⊂ E'(Fp2): y² = x³ + 5u (M-type sextic twist), built on
// noble's weierstrass(); point encodings of GM/T 0044 and the subgroup checks every input goes through.

import { weierstrass } from '@noble/curves/abstract/weierstrass.js';
import type { WeierstrassPoint, WeierstrassPointCons } from '@noble/curves/abstract/weierstrass.js';
import { InvalidInputError } from '../../errors.js';
import {
  Fp, Fn, Fp2Field, N, p, t, bigToBytes, bytesToBig, concatBytes, f2conj, f2inv, f2mul, f2pow,
  type Fp2,
} from './fields.js';

/** Curve coefficient b of E: y² = x³ + b. */
export const b = 5n;
/** Twist coefficient b' = b·u (M-type twist, ξ = u). */
export const bTwist: Fp2 = { c0: 0n, c1: 5n };

/** Generator P1 of G1 (GM/T 0044 part 5, A.1). */
export const P1_COORDS = {
  x: 0x93de051d62bf718ff5ed0704487d01d6e1e4086909dc3280e8c4e4817c66ddddn,
  y: 0x21fe8dda4f21e607631065125c395bbc1c1c00cbfa6024350c464cd70a3ea616n,
};
/** Generator P2 of G2; x = x1·u + x0, y = y1·u + y0. */
export const P2_COORDS = {
  x: {
    c1: 0x85aef3d078640c98597b6027b441a01ff1dd2c190f5e93c454806c11d8806141n,
    c0: 0x3722755292130b08d2aab97fd34ec120ee265948d19c17abf9b7213baf82d65bn,
  },
  y: {
    c1: 0x17509b092e845c1266ba0d262cbee6ed0736a96fa347c8bd856dc76b84ebeb96n,
    c0: 0xa7cf28d519be3da65f3170153d278ff247efba98a71a08116215bba5c999a7c7n,
  },
};

export type G1Point = WeierstrassPoint<bigint>;
export type G2Point = WeierstrassPoint<Fp2>;

export const G1: WeierstrassPointCons<bigint> = weierstrass(
  { p, n: N, h: 1n, a: 0n, b, Gx: P1_COORDS.x, Gy: P1_COORDS.y },
  { Fp, Fn },
);

// ψ = twist ∘ Frobenius ∘ untwist on E': (x, y) ↦ (x̄·u^(-(p-1)/3), ȳ·u^(-(p-1)/2)).
const U: Fp2 = { c0: 0n, c1: 1n };
// ψ's constants, at its first use (not at import: see fields.ts GAMMA).
let psiConstants: { x: Fp2; y: Fp2 } | undefined;
const PSI = () => (psiConstants ??= { x: f2inv(f2pow(U, (p - 1n) / 3n)), y: f2inv(f2pow(U, (p - 1n) / 2n)) });

/** 6t² ≡ p (mod N): on G2 the Frobenius endomorphism ψ acts as multiplication by it. */
const SIX_T2 = 6n * t * t;

export const G2: WeierstrassPointCons<Fp2> = weierstrass(
  { p: p * p, n: N, h: 2n * p - N, a: { c0: 0n, c1: 0n }, b: bTwist, Gx: P2_COORDS.x, Gy: P2_COORDS.y },
  {
    Fp: Fp2Field,
    Fn,
    // Q ∈ G2 iff ψ(Q) = [6t²]Q, with a 128-bit scalar instead of [N]Q's 256 bits. Sound: ψ satisfies
    // ψ² − tr·ψ + p = 0 with tr = p + 1 − N = 6t² + 1, so ψ(Q) = [6t²]Q gives
    // [36t⁴ − (6t²+1)·6t² + p]Q = [p − 6t²]Q = [N]Q = O. Complete: on G2, ψ acts as [p] = [6t² mod N].
    isTorsionFree: (c, P) => P.multiplyUnsafe(SIX_T2).equals(psi(c, P)),
  },
);

export function psi(c: WeierstrassPointCons<Fp2>, P: G2Point): G2Point {
  const a = P.toAffine();
  const k = PSI();
  return c.fromAffine({ x: f2mul(f2conj(a.x), k.x), y: f2mul(f2conj(a.y), k.y) });
}

// Fixed-base tables for P1 and P2, built on first use so importing the module stays cheap.
G1.BASE.precompute(8);
G2.BASE.precompute(8);

// ---------------------------------------------------------------------------------------------
// Encodings. G1: x ‖ y (64 bytes); a leading 0x04 (65 bytes) is accepted on input and used for the
// signature's S as in Annex A. G2: x1 ‖ x0 ‖ y1 ‖ y0 (128 bytes; 129 with a 0x04 prefix accepted).

function readFp(b: Uint8Array, off: number, what: string): bigint {
  const x = bytesToBig(b.subarray(off, off + 32));
  if (x >= p) throw new InvalidInputError(`${what}: coordinate not reduced mod p`);
  return x;
}

export function g1FromBytes(bytes: Uint8Array, what = 'G1 point'): G1Point {
  if (!(bytes instanceof Uint8Array)) throw new InvalidInputError(`${what}: expected Uint8Array`);
  let b = bytes;
  if (b.length === 65 && b[0] === 0x04) b = b.subarray(1);
  if (b.length !== 64) throw new InvalidInputError(`${what}: expected 64 bytes (x‖y) or 65 with 0x04, got ${bytes.length}`);
  const P = G1.fromAffine({ x: readFp(b, 0, what), y: readFp(b, 32, what) });
  try {
    P.assertValidity(); // on the curve, not infinity; G1 has cofactor 1
  } catch (e) {
    throw new InvalidInputError(`${what}: not a point of G1`, { cause: e });
  }
  return P;
}

export function g1ToBytes(P: G1Point, prefix04 = false): Uint8Array {
  const a = P.toAffine();
  const xy = concatBytes(bigToBytes(a.x), bigToBytes(a.y));
  return prefix04 ? concatBytes(Uint8Array.of(0x04), xy) : xy;
}

export function g2FromBytes(bytes: Uint8Array, what = 'G2 point'): G2Point {
  if (!(bytes instanceof Uint8Array)) throw new InvalidInputError(`${what}: expected Uint8Array`);
  let b = bytes;
  if (b.length === 129 && b[0] === 0x04) b = b.subarray(1);
  if (b.length !== 128) throw new InvalidInputError(`${what}: expected 128 bytes (x1‖x0‖y1‖y0) or 129 with 0x04, got ${bytes.length}`);
  const x = { c1: readFp(b, 0, what), c0: readFp(b, 32, what) };
  const y = { c1: readFp(b, 64, what), c0: readFp(b, 96, what) };
  const P = G2.fromAffine({ x, y });
  try {
    P.assertValidity(); // on the twist, not infinity, and in the order-N subgroup
  } catch (e) {
    throw new InvalidInputError(`${what}: not a point of G2 (off the twist or outside the order-N subgroup)`, { cause: e });
  }
  return P;
}

export function g2ToBytes(P: G2Point): Uint8Array {
  const a = P.toAffine();
  return concatBytes(bigToBytes(a.x.c1), bigToBytes(a.x.c0), bigToBytes(a.y.c1), bigToBytes(a.y.c0));
}
