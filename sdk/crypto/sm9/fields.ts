// SM9 BN-curve field tower (GM/T 0044-2016 part 1): Fp, Fp2 = Fp[u]/(u²+2), Fp4 = Fp2[v]/(v²-u),
// Fp12 = Fp4[w]/(w³-v), laid out exactly as the standard so encodings map coefficient by coefficient.

import { Field, mod } from '@noble/curves/abstract/modular.js';
import type { IField } from '@noble/curves/abstract/modular.js';
import { concat } from '../../bytes.js';

/** BN parameter t of the SM9 curve: p = 36t⁴+36t³+24t²+6t+1, N = 36t⁴+36t³+18t²+6t+1. */
export const t = 0x600000000058f98an;
/** Base field characteristic q (the standard calls it q; p here, as in the KAT file). */
export const p = 0xb640000002a3a6f1d603ab4ff58ec74521f2934b1a7aeedbe56f9b27e351457dn;
/** Order of G1, G2 and GT. */
export const N = 0xb640000002a3a6f1d603ab4ff58ec74449f2934b18ea8beee56ee19cd69ecf25n;

/** Base field, from noble; hot paths below inline its arithmetic on raw bigints to defer reductions. */
export const Fp = Field(p);
/** Scalar field mod N. */
export const Fn = Field(N);

const P = p;
/** Reduce a possibly negative or oversized bigint into [0, p). */
export function md(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

// ---------------------------------------------------------------------------------------------
// Fp2 = Fp[u]/(u² + 2): u² = -2 because -1 is a square mod p (p ≡ 1 mod 4).

export interface Fp2 {
  readonly c0: bigint;
  readonly c1: bigint; // coefficient of u
}

export const F2_ZERO: Fp2 = { c0: 0n, c1: 0n };
export const F2_ONE: Fp2 = { c0: 1n, c1: 0n };

export const f2 = (c0: bigint, c1: bigint): Fp2 => ({ c0, c1 });
// Sums and differences of reduced values need one conditional correction, not a division.
const addP = (x: bigint, y: bigint) => {
  const r = x + y;
  return r >= P ? r - P : r;
};
const subP = (x: bigint, y: bigint) => {
  const r = x - y;
  return r < 0n ? r + P : r;
};
export const f2add = (a: Fp2, b: Fp2): Fp2 => ({ c0: addP(a.c0, b.c0), c1: addP(a.c1, b.c1) });
export const f2sub = (a: Fp2, b: Fp2): Fp2 => ({ c0: subP(a.c0, b.c0), c1: subP(a.c1, b.c1) });
export const f2neg = (a: Fp2): Fp2 => ({ c0: subP(0n, a.c0), c1: subP(0n, a.c1) });
export const f2dbl = (a: Fp2): Fp2 => ({ c0: addP(a.c0, a.c0), c1: addP(a.c1, a.c1) });
export const f2mul = (a: Fp2, b: Fp2): Fp2 => ({
  c0: md(a.c0 * b.c0 - 2n * a.c1 * b.c1),
  c1: md(a.c0 * b.c1 + a.c1 * b.c0),
});
export const f2sqr = (a: Fp2): Fp2 => ({
  c0: md(a.c0 * a.c0 - 2n * a.c1 * a.c1),
  c1: md(2n * a.c0 * a.c1),
});
/** Multiply by an Fp scalar. */
export const f2mulFp = (a: Fp2, k: bigint): Fp2 => ({ c0: md(a.c0 * k), c1: md(a.c1 * k) });
/** Multiply by u: (c0 + c1 u)u = -2c1 + c0 u. */
export const f2mulU = (a: Fp2): Fp2 => ({ c0: md(-2n * a.c1), c1: a.c0 });
/** Conjugate, which is also the p-power Frobenius because u^p = -u. */
export const f2conj = (a: Fp2): Fp2 => ({ c0: a.c0, c1: subP(0n, a.c1) });
export const f2eq = (a: Fp2, b: Fp2): boolean => a.c0 === b.c0 && a.c1 === b.c1;
export const f2is0 = (a: Fp2): boolean => a.c0 === 0n && a.c1 === 0n;
export function f2inv(a: Fp2): Fp2 {
  const norm = md(a.c0 * a.c0 + 2n * a.c1 * a.c1);
  if (norm === 0n) throw new RangeError('Fp2: inverse of zero');
  const ni = Fp.inv(norm);
  return { c0: md(a.c0 * ni), c1: md(-a.c1 * ni) };
}
export function f2pow(a: Fp2, e: bigint): Fp2 {
  let r = F2_ONE;
  let b = a;
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = f2mul(r, b);
    b = f2sqr(b);
  }
  return r;
}

/** Square root in Fp2 (p² ≡ 9 mod 16, so generic): a^((p²+7)/16)-free route via the norm. */
export function f2sqrt(a: Fp2): Fp2 {
  if (f2is0(a)) return F2_ZERO;
  // Complex-method square root: with n = sqrt(c0² + 2c1²) in Fp, x0² = (c0 ± n)/2, x1 = c1/(2x0).
  const norm = md(a.c0 * a.c0 + 2n * a.c1 * a.c1);
  const n = Fp.sqrt(norm); // throws if the norm is a non-residue, i.e. a has no square root
  const half = Fp.inv(2n);
  for (const cand of [md((a.c0 + n) * half), md((a.c0 - n) * half)]) {
    if (FpIsSquare(cand)) {
      const x0 = Fp.sqrt(cand);
      if (x0 === 0n) {
        // a = c1 u only happens with c0² + 2c1² square and c0 = -n; solve x1² = -c0/2 instead.
        const x1 = Fp.sqrt(md(-a.c0 * half));
        const r = { c0: 0n, c1: x1 };
        if (f2eq(f2sqr(r), a)) return r;
        continue;
      }
      const r = { c0: x0, c1: md(a.c1 * Fp.inv(2n * x0)) };
      if (f2eq(f2sqr(r), a)) return r;
    }
  }
  throw new RangeError('Fp2: no square root');
}
function FpIsSquare(a: bigint): boolean {
  return a === 0n || Fp.pow(a, (p - 1n) / 2n) === 1n;
}

/** Fp2 as a noble IField, so noble's weierstrass() can run the twist curve (G2) over it. */
export const Fp2Field: IField<Fp2> = {
  ORDER: p * p,
  BYTES: 64,
  BITS: 512,
  isLE: false,
  ZERO: F2_ZERO,
  ONE: F2_ONE,
  create: (a) => ({ c0: md(a.c0), c1: md(a.c1) }),
  isValid: (a) =>
    typeof a === 'object' && a !== null && typeof a.c0 === 'bigint' && typeof a.c1 === 'bigint' &&
    a.c0 >= 0n && a.c0 < p && a.c1 >= 0n && a.c1 < p,
  is0: f2is0,
  isValidNot0: (a) => Fp2Field.isValid(a) && !f2is0(a),
  neg: f2neg,
  inv: f2inv,
  sqrt: f2sqrt,
  sqr: f2sqr,
  eql: f2eq,
  add: f2add,
  sub: f2sub,
  mul: (a, b) => (typeof b === 'bigint' ? f2mulFp(a, mod(b, p)) : f2mul(a, b)),
  pow: f2pow,
  div: (a, b) => (typeof b === 'bigint' ? f2mulFp(a, Fp.inv(mod(b, p))) : f2mul(a, f2inv(b))),
  addN: f2add,
  subN: f2sub,
  mulN: (a, b) => (typeof b === 'bigint' ? f2mulFp(a, mod(b, p)) : f2mul(a, b)),
  sqrN: f2sqr,
  isOdd: (a) => (a.c0 & 1n) === 1n,
  invertBatch: (list) => list.map((x) => f2inv(x)),
  toBytes: (a) => concatBytes(Fp.toBytes(a.c1), Fp.toBytes(a.c0)),
  fromBytes: (b) => {
    if (b.length !== 64) throw new RangeError('Fp2: expected 64 bytes');
    return { c0: Fp.fromBytes(b.subarray(32)), c1: Fp.fromBytes(b.subarray(0, 32)) };
  },
  cmov: (a, b, c) => (c ? b : a),
};

// ---------------------------------------------------------------------------------------------
// Fp4 = Fp2[v]/(v² - u)

export interface Fp4 {
  readonly c0: Fp2;
  readonly c1: Fp2; // coefficient of v
}
export const F4_ZERO: Fp4 = { c0: F2_ZERO, c1: F2_ZERO };
export const F4_ONE: Fp4 = { c0: F2_ONE, c1: F2_ZERO };

export const f4add = (a: Fp4, b: Fp4): Fp4 => ({ c0: f2add(a.c0, b.c0), c1: f2add(a.c1, b.c1) });
export const f4sub = (a: Fp4, b: Fp4): Fp4 => ({ c0: f2sub(a.c0, b.c0), c1: f2sub(a.c1, b.c1) });
export const f4neg = (a: Fp4): Fp4 => ({ c0: f2neg(a.c0), c1: f2neg(a.c1) });
export const f4conj = (a: Fp4): Fp4 => ({ c0: a.c0, c1: f2neg(a.c1) });
export const f4eq = (a: Fp4, b: Fp4): boolean => f2eq(a.c0, b.c0) && f2eq(a.c1, b.c1);

/**
 * (a0 + a1 v)(b0 + b1 v) = a0b0 + u·a1b1 + (a0b1 + a1b0)v, written on the four Fp coefficients so
 * each output coefficient takes a single reduction (bigint % dominates the cost, not *).
 */
export function f4mul(a: Fp4, b: Fp4): Fp4 {
  const a00 = a.c0.c0, a01 = a.c0.c1, a10 = a.c1.c0, a11 = a.c1.c1;
  const b00 = b.c0.c0, b01 = b.c0.c1, b10 = b.c1.c0, b11 = b.c1.c1;
  // a1b1 = (a10b10 - 2a11b11) + (a10b11 + a11b10)u; u·(x + yu) = -2y + xu
  const m0 = a10 * b10 - 2n * a11 * b11;
  const m1 = a10 * b11 + a11 * b10;
  return {
    c0: { c0: md(a00 * b00 - 2n * a01 * b01 - 2n * m1), c1: md(a00 * b01 + a01 * b00 + m0) },
    c1: {
      c0: md(a00 * b10 - 2n * a01 * b11 + a10 * b00 - 2n * a11 * b01),
      c1: md(a00 * b11 + a01 * b10 + a10 * b01 + a11 * b00),
    },
  };
}
export function f4sqr(a: Fp4): Fp4 {
  const a00 = a.c0.c0, a01 = a.c0.c1, a10 = a.c1.c0, a11 = a.c1.c1;
  const m0 = a10 * a10 - 2n * a11 * a11;
  const m1 = 2n * a10 * a11;
  return {
    c0: { c0: md(a00 * a00 - 2n * a01 * a01 - 2n * m1), c1: md(2n * a00 * a01 + m0) },
    c1: { c0: md(2n * (a00 * a10 - 2n * a01 * a11)), c1: md(2n * (a00 * a11 + a01 * a10)) },
  };
}
/** Multiply by v: v(x0 + x1 v) = u·x1 + x0 v. */
export const f4mulV = (a: Fp4): Fp4 => ({ c0: f2mulU(a.c1), c1: a.c0 });
export const f4mulFp2 = (a: Fp4, k: Fp2): Fp4 => ({ c0: f2mul(a.c0, k), c1: f2mul(a.c1, k) });
export function f4inv(a: Fp4): Fp4 {
  // (a0 + a1 v)(a0 - a1 v) = a0² - u a1² ∈ Fp2
  const norm = f2sub(f2sqr(a.c0), f2mulU(f2sqr(a.c1)));
  const ni = f2inv(norm);
  return { c0: f2mul(a.c0, ni), c1: f2neg(f2mul(a.c1, ni)) };
}

// ---------------------------------------------------------------------------------------------
// Fp12 = Fp4[w]/(w³ - v); equivalently Fp2[w]/(w⁶ - u) with w³ = v.
//
// Stored flat as 12 bigints [a0 | a1 | a2], ai = (ai0.c0, ai0.c1, ai1.c0, ai1.c1) for
// ai = ai0 + ai1·v. The hot operations work on unreduced bigints throughout (bigints cannot
// overflow) and reduce each of the 12 outputs once: a reduction costs as much as a product, and
// allocation of intermediate objects costs more than both.

export type Fp12 = readonly bigint[];
export const F12_ONE: Fp12 = [1n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];

export const f12eq = (a: Fp12, b: Fp12): boolean => a.every((x, i) => x === b[i]);

type Q4 = [bigint, bigint, bigint, bigint];

/** Unreduced Fp4 product, Karatsuba on both levels: 9 Fp products. */
function m4(a0: bigint, a1: bigint, a2: bigint, a3: bigint, b0: bigint, b1: bigint, b2: bigint, b3: bigint): Q4 {
  const m0 = a0 * b0, m1 = a1 * b1;
  const t00 = m0 - (m1 << 1n), t01 = (a0 + a1) * (b0 + b1) - m0 - m1;
  const n0 = a2 * b2, n1 = a3 * b3;
  const t10 = n0 - (n1 << 1n), t11 = (a2 + a3) * (b2 + b3) - n0 - n1;
  const s0 = a0 + a2, s1 = a1 + a3, r0 = b0 + b2, r1 = b1 + b3;
  const k0 = s0 * r0, k1 = s1 * r1;
  const sc0 = k0 - (k1 << 1n), sc1 = (s0 + s1) * (r0 + r1) - k0 - k1;
  // X0Y0 + u·X1Y1 and (X0+X1)(Y0+Y1) − X0Y0 − X1Y1, with u(z0 + z1u) = −2z1 + z0u
  return [t00 - (t11 << 1n), t01 + t10, sc0 - t00 - t10, sc1 - t01 - t11];
}

/** Unreduced Fp4 square: X0² + u·X1² + 2X0X1·v, 7 Fp products. */
function s4(x0: bigint, x1: bigint, x2: bigint, x3: bigint): Q4 {
  const p01 = x0 * x1;
  const q0 = (x0 + x1) * (x0 - (x1 << 1n)) + p01; // x0² − 2x1²
  const p23 = x2 * x3;
  const r0 = (x2 + x3) * (x2 - (x3 << 1n)) + p23;
  const m0 = x0 * x2, m1 = x1 * x3;
  const e0 = m0 - (m1 << 1n), e1 = (x0 + x1) * (x2 + x3) - m0 - m1;
  return [q0 - (p23 << 2n), (p01 << 1n) + r0, e0 << 1n, e1 << 1n];
}

const red = (c: bigint[]): Fp12 => {
  for (let i = 0; i < 12; i++) {
    const r = c[i]! % P;
    c[i] = r < 0n ? r + P : r;
  }
  return c;
};

export function f12mul(a: Fp12, b: Fp12): Fp12 {
  const a0 = a[0]!, a1 = a[1]!, a2 = a[2]!, a3 = a[3]!, a4 = a[4]!, a5 = a[5]!, a6 = a[6]!, a7 = a[7]!, a8 = a[8]!, a9 = a[9]!, a10 = a[10]!, a11 = a[11]!;
  const b0 = b[0]!, b1 = b[1]!, b2 = b[2]!, b3 = b[3]!, b4 = b[4]!, b5 = b[5]!, b6 = b[6]!, b7 = b[7]!, b8 = b[8]!, b9 = b[9]!, b10 = b[10]!, b11 = b[11]!;
  // Karatsuba over the cubic extension: 6 Fp4 products instead of 9.
  const t0 = m4(a0!, a1!, a2!, a3!, b0!, b1!, b2!, b3!);
  const t1 = m4(a4!, a5!, a6!, a7!, b4!, b5!, b6!, b7!);
  const t2 = m4(a8!, a9!, a10!, a11!, b8!, b9!, b10!, b11!);
  const m12 = m4(a4! + a8!, a5! + a9!, a6! + a10!, a7! + a11!, b4! + b8!, b5! + b9!, b6! + b10!, b7! + b11!);
  const m01 = m4(a0! + a4!, a1! + a5!, a2! + a6!, a3! + a7!, b0! + b4!, b1! + b5!, b2! + b6!, b3! + b7!);
  const m02 = m4(a0! + a8!, a1! + a9!, a2! + a10!, a3! + a11!, b0! + b8!, b1! + b9!, b2! + b10!, b3! + b11!);
  // c0 = t0 + v(m12 − t1 − t2); c1 = m01 − t0 − t1 + v·t2; c2 = m02 − t0 − t2 + t1;
  // v(z0 + z1u + (z2 + z3u)v) = −2z3 + z2u + (z0 + z1u)v
  const z0 = m12[0] - t1[0] - t2[0], z1 = m12[1] - t1[1] - t2[1];
  const z2 = m12[2] - t1[2] - t2[2], z3 = m12[3] - t1[3] - t2[3];
  return red([
    t0[0] - (z3 << 1n), t0[1] + z2, t0[2] + z0, t0[3] + z1,
    m01[0] - t0[0] - t1[0] - (t2[3] << 1n), m01[1] - t0[1] - t1[1] + t2[2],
    m01[2] - t0[2] - t1[2] + t2[0], m01[3] - t0[3] - t1[3] + t2[1],
    m02[0] - t0[0] - t2[0] + t1[0], m02[1] - t0[1] - t2[1] + t1[1],
    m02[2] - t0[2] - t2[2] + t1[2], m02[3] - t0[3] - t2[3] + t1[3],
  ]);
}

export function f12sqr(a: Fp12): Fp12 {
  const a0 = a[0]!, a1 = a[1]!, a2 = a[2]!, a3 = a[3]!, a4 = a[4]!, a5 = a[5]!, a6 = a[6]!, a7 = a[7]!, a8 = a[8]!, a9 = a[9]!, a10 = a[10]!, a11 = a[11]!;
  // Chung–Hasan SQR2: 3 Fp4 squarings + 2 products instead of 6 products.
  const s0 = s4(a0!, a1!, a2!, a3!);
  const ab = m4(a4!, a5!, a6!, a7!, a8!, a9!, a10!, a11!); // s1 = 2ab
  const s2 = s4(a0! - a4! + a8!, a1! - a5! + a9!, a2! - a6! + a10!, a3! - a7! + a11!);
  const ac = m4(a0!, a1!, a2!, a3!, a4!, a5!, a6!, a7!); // s3 = 2ac
  const s4_ = s4(a8!, a9!, a10!, a11!);
  // c0 = s0 + v·s1, c1 = s3 + v·s4, c2 = s1 + s2 + s3 − s0 − s4
  return red([
    s0[0] - (ab[3] << 2n), s0[1] + (ab[2] << 1n), s0[2] + (ab[0] << 1n), s0[3] + (ab[1] << 1n),
    (ac[0] << 1n) - (s4_[3] << 1n), (ac[1] << 1n) + s4_[2], (ac[2] << 1n) + s4_[0], (ac[3] << 1n) + s4_[1],
    ((ab[0] + ac[0]) << 1n) + s2[0] - s0[0] - s4_[0], ((ab[1] + ac[1]) << 1n) + s2[1] - s0[1] - s4_[1],
    ((ab[2] + ac[2]) << 1n) + s2[2] - s0[2] - s4_[2], ((ab[3] + ac[3]) << 1n) + s2[3] - s0[3] - s4_[3],
  ]);
}

/**
 * Granger–Scott squaring, valid only in the cyclotomic subgroup (after the easy part of the final
 * exponentiation): f = a + bw + cw² ↦ (3a² − 2ā) + (3vc² + 2b̄)w + (3b² − 2c̄)w², bar = conjugation of
 * Fp4 over Fp2. Three Fp4 squarings instead of a full Fp12 squaring.
 */
export function f12cycSqr(f: Fp12): Fp12 {
  const a0 = f[0]!, a1 = f[1]!, a2 = f[2]!, a3 = f[3]!, b0 = f[4]!, b1 = f[5]!, b2 = f[6]!, b3 = f[7]!, c0 = f[8]!, c1 = f[9]!, c2 = f[10]!, c3 = f[11]!;
  const A = s4(a0!, a1!, a2!, a3!);
  const B = s4(b0!, b1!, b2!, b3!);
  const C = s4(c0!, c1!, c2!, c3!);
  // v·C = (−2C3, C2, C0, C1)
  return red([
    3n * A[0] - (a0! << 1n), 3n * A[1] - (a1! << 1n), 3n * A[2] + (a2! << 1n), 3n * A[3] + (a3! << 1n),
    -6n * C[3] + (b0! << 1n), 3n * C[2] + (b1! << 1n), 3n * C[0] - (b2! << 1n), 3n * C[1] - (b3! << 1n),
    3n * B[0] - (c0! << 1n), 3n * B[1] - (c1! << 1n), 3n * B[2] + (c2! << 1n), 3n * B[3] + (c3! << 1n),
  ]);
}

/**
 * Multiply f by a line l = L0 + L2·w² whose L0 = l00 + l01·v and L2 = l20 (all in Fp2): the shape
 * every Miller-loop line takes on the M-type twist (see pairing.ts). 45 Fp products, not 54.
 */
export function f12mulLine(f: Fp12, l00: Fp2, l01: Fp2, l20: Fp2): Fp12 {
  const a0 = f[0]!, a1 = f[1]!, a2 = f[2]!, a3 = f[3]!, b0 = f[4]!, b1 = f[5]!, b2 = f[6]!, b3 = f[7]!, c0 = f[8]!, c1 = f[9]!, c2 = f[10]!, c3 = f[11]!;
  const L0 = l00.c0, L1 = l00.c1, L2 = l01.c0, L3 = l01.c1;
  const aL = m4(a0!, a1!, a2!, a3!, L0, L1, L2, L3);
  const bL = m4(b0!, b1!, b2!, b3!, L0, L1, L2, L3);
  const cL = m4(c0!, c1!, c2!, c3!, L0, L1, L2, L3);
  const e0 = l20.c0, e1 = l20.c1, es = e0 + e1;
  // (x0 + x1u)(e0 + e1u), Karatsuba, unreduced
  const m2 = (x0: bigint, x1: bigint): [bigint, bigint] => {
    const p0 = x0 * e0, p1 = x1 * e1;
    return [p0 - (p1 << 1n), (x0 + x1) * es - p0 - p1];
  };
  const [aE0, aE1] = m2(a0!, a1!), [aE2, aE3] = m2(a2!, a3!);
  const [bE0, bE1] = m2(b0!, b1!), [bE2, bE3] = m2(b2!, b3!);
  const [cE0, cE1] = m2(c0!, c1!), [cE2, cE3] = m2(c2!, c3!);
  // (a + bw + cw²)(L0 + L2w²) = (aL0 + v·bL2) + (bL0 + v·cL2)w + (cL0 + aL2)w²
  return red([
    aL[0] - (bE3 << 1n), aL[1] + bE2, aL[2] + bE0, aL[3] + bE1,
    bL[0] - (cE3 << 1n), bL[1] + cE2, bL[2] + cE0, bL[3] + cE1,
    cL[0] + aE0, cL[1] + aE1, cL[2] + aE2, cL[3] + aE3,
  ]);
}

const toF4 = (f: Fp12, i: number): Fp4 => ({ c0: { c0: f[i]!, c1: f[i + 1]! }, c1: { c0: f[i + 2]!, c1: f[i + 3]! } });
const fromF4 = (...xs: Fp4[]): Fp12 => xs.flatMap((x) => [x.c0.c0, x.c0.c1, x.c1.c0, x.c1.c1]);

export function f12inv(f: Fp12): Fp12 {
  const a0 = toF4(f, 0), a1 = toF4(f, 4), a2 = toF4(f, 8);
  const A = f4sub(f4sqr(a0), f4mulV(f4mul(a1, a2)));
  const B = f4sub(f4mulV(f4sqr(a2)), f4mul(a0, a1));
  const C = f4sub(f4sqr(a1), f4mul(a0, a2));
  const F = f4add(f4mul(a0, A), f4mulV(f4add(f4mul(a2, B), f4mul(a1, C))));
  const Fi = f4inv(F);
  return fromF4(f4mul(A, Fi), f4mul(B, Fi), f4mul(C, Fi));
}

/** f^(p⁶): negates the odd powers of w (w, w³ = v, w⁵); the inverse in the cyclotomic subgroup. */
export const f12conj = (a: Fp12): Fp12 =>
  a.map((x, i) => (i === 2 || i === 3 || i === 4 || i === 5 || i === 10 || i === 11 ? md(-x) : x));

// Frobenius: w^(p^n) = w · u^((p^n − 1)/6), so the coefficient of w^k is multiplied by
// γ[n][k] = u^(k(p^n − 1)/6), after conjugating the Fp2 coefficient when n is odd.
// Computed at the first Frobenius map, not at import: a process that never pairs (an RSA working directory) skips
// these exponentiations (tens of ms at every start of the CLI and of its back-office thread).
const U: Fp2 = { c0: 0n, c1: 1n };
let gamma: Fp2[][] | undefined;
const GAMMA = (): Fp2[][] =>
  (gamma ??= [1n, 2n, 3n].map((n) => {
    const base = f2pow(U, (p ** n - 1n) / 6n);
    const row: Fp2[] = [F2_ONE];
    for (let k = 1; k < 6; k++) row.push(f2mul(row[k - 1]!, base));
    return row;
  }));
/** Power of w carried by each flat Fp2 slot: a00 = w⁰, a01 = v = w³, a10 = w, a11 = w⁴, a20 = w², a21 = w⁵. */
const W_POWER = [0, 3, 1, 4, 2, 5];

export function f12frob(a: Fp12, n: 1 | 2 | 3): Fp12 {
  const g = GAMMA()[n - 1]!;
  const out: bigint[] = [];
  for (let j = 0; j < 6; j++) {
    let x: Fp2 = { c0: a[2 * j]!, c1: a[2 * j + 1]! };
    if (n !== 2) x = f2conj(x);
    const k = W_POWER[j]!;
    if (k !== 0) x = f2mul(x, g[k]!);
    out.push(x.c0, x.c1);
  }
  return out;
}

/** Generic square-and-multiply; only for tests and non-hot paths. */
export function f12pow(a: Fp12, e: bigint): Fp12 {
  let r = F12_ONE;
  for (let i = e.toString(2).length - 1; i >= 0; i--) {
    r = f12sqr(r);
    if ((e >> BigInt(i)) & 1n) r = f12mul(r, a);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Encodings (GM/T 0044 part 1, 6.1): big-endian, Fp2 = (u-coefficient ‖ constant), Fp12 =
// a2,1 ‖ a2,0 ‖ a1,1 ‖ a1,0 ‖ a0,1 ‖ a0,0 with f = a0 + a1 w + a2 w², ai = ai,0 + ai,1 v.

/** The project's byte concatenation, under the name the SM9 modules use. */
export const concatBytes = concat;

export function bigToBytes(x: bigint, len = 32): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

export function bytesToBig(b: Uint8Array): bigint {
  let x = 0n;
  for (const byte of b) x = (x << 8n) | BigInt(byte);
  return x;
}

/** The standard's order a21 ‖ a20 ‖ a11 ‖ a10 ‖ a01 ‖ a00 (each u-coefficient first) is the flat layout reversed. */
export function f12toBytes(f: Fp12): Uint8Array {
  const out = new Uint8Array(384);
  for (let i = 0; i < 12; i++) out.set(bigToBytes(f[11 - i]!), 32 * i);
  return out;
}

/** Parse 384 bytes into Fp12; rejects coefficients ≥ p. */
export function f12fromBytes(b: Uint8Array): Fp12 {
  if (b.length !== 384) throw new RangeError('Fp12: expected 384 bytes');
  const out: bigint[] = [];
  for (let i = 11; i >= 0; i--) {
    const x = bytesToBig(b.subarray(32 * i, 32 * i + 32));
    if (x >= p) throw new RangeError('Fp12: coefficient not reduced mod p');
    out.push(x);
  }
  return out;
}
