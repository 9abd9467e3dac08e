// SM9 BN-curve field tower (GM/T 0044-2016 part 1): Fp, Fp2 = Fp[u]/(u²+2), Fp4 = Fp2[v]/(v²-u),
// Fp12 = Fp4[w]/(w³-v), laid out exactly as the standard so encodings map coefficient by coefficient.

import { Field, mod } from '@noble/curves/abstract/modular.js';
import type { IField } from '@noble/curves/abstract/modular.js';

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
export const f2add = (a: Fp2, b: Fp2): Fp2 => ({ c0: md(a.c0 + b.c0), c1: md(a.c1 + b.c1) });
export const f2sub = (a: Fp2, b: Fp2): Fp2 => ({ c0: md(a.c0 - b.c0), c1: md(a.c1 - b.c1) });
export const f2neg = (a: Fp2): Fp2 => ({ c0: md(-a.c0), c1: md(-a.c1) });
export const f2dbl = (a: Fp2): Fp2 => ({ c0: md(a.c0 << 1n), c1: md(a.c1 << 1n) });
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
export const f2conj = (a: Fp2): Fp2 => ({ c0: a.c0, c1: md(-a.c1) });
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

export interface Fp12 {
  readonly c0: Fp4;
  readonly c1: Fp4; // coefficient of w
  readonly c2: Fp4; // coefficient of w²
}
export const F12_ONE: Fp12 = { c0: F4_ONE, c1: F4_ZERO, c2: F4_ZERO };

export const f12eq = (a: Fp12, b: Fp12): boolean => f4eq(a.c0, b.c0) && f4eq(a.c1, b.c1) && f4eq(a.c2, b.c2);

export function f12mul(a: Fp12, b: Fp12): Fp12 {
  // Karatsuba over the cubic extension: 6 Fp4 products instead of 9.
  const t0 = f4mul(a.c0, b.c0);
  const t1 = f4mul(a.c1, b.c1);
  const t2 = f4mul(a.c2, b.c2);
  const m12 = f4mul(f4add(a.c1, a.c2), f4add(b.c1, b.c2));
  const m01 = f4mul(f4add(a.c0, a.c1), f4add(b.c0, b.c1));
  const m02 = f4mul(f4add(a.c0, a.c2), f4add(b.c0, b.c2));
  return {
    c0: f4add(t0, f4mulV(f4sub(m12, f4add(t1, t2)))),
    c1: f4add(f4sub(m01, f4add(t0, t1)), f4mulV(t2)),
    c2: f4add(f4sub(m02, f4add(t0, t2)), t1),
  };
}

export function f12sqr(a: Fp12): Fp12 {
  // Chung–Hasan SQR2: 2 squarings + 3 products of Fp4 instead of 6 products.
  const s0 = f4sqr(a.c0);
  const ab = f4mul(a.c1, a.c2);
  const s1 = f4add(ab, ab);
  const s2 = f4sqr(f4add(f4sub(a.c0, a.c1), a.c2));
  const a01 = f4mul(a.c0, a.c1);
  const s3 = f4add(a01, a01);
  const s4 = f4sqr(a.c2);
  return {
    c0: f4add(s0, f4mulV(s1)),
    c1: f4add(s3, f4mulV(s4)),
    c2: f4sub(f4add(f4add(s1, s2), s3), f4add(s0, s4)),
  };
}

/**
 * Granger–Scott squaring, valid only in the cyclotomic subgroup (after the easy part of the final
 * exponentiation): f = a + bw + cw² ↦ (3a² − 2ā) + (3vc² + 2b̄)w + (3b² − 2c̄)w², bar = conjugation of
 * Fp4 over Fp2. Three Fp4 squarings instead of a full Fp12 squaring.
 */
export function f12cycSqr(f: Fp12): Fp12 {
  const a2 = f4sqr(f.c0);
  const b2 = f4sqr(f.c1);
  const c2v = f4mulV(f4sqr(f.c2));
  const A = f4sub(f4add(f4add(a2, a2), a2), f4add(f4conj(f.c0), f4conj(f.c0)));
  const B = f4add(f4add(f4add(c2v, c2v), c2v), f4add(f4conj(f.c1), f4conj(f.c1)));
  const C = f4sub(f4add(f4add(b2, b2), b2), f4add(f4conj(f.c2), f4conj(f.c2)));
  return { c0: A, c1: B, c2: C };
}

export function f12inv(a: Fp12): Fp12 {
  const A = f4sub(f4sqr(a.c0), f4mulV(f4mul(a.c1, a.c2)));
  const B = f4sub(f4mulV(f4sqr(a.c2)), f4mul(a.c0, a.c1));
  const C = f4sub(f4sqr(a.c1), f4mul(a.c0, a.c2));
  const F = f4add(f4mul(a.c0, A), f4mulV(f4add(f4mul(a.c2, B), f4mul(a.c1, C))));
  const Fi = f4inv(F);
  return { c0: f4mul(A, Fi), c1: f4mul(B, Fi), c2: f4mul(C, Fi) };
}

/** f^(p⁶): negates the odd powers of w; equals the inverse in the cyclotomic subgroup. */
export const f12conj = (a: Fp12): Fp12 => ({ c0: f4conj(a.c0), c1: f4neg(f4conj(a.c1)), c2: f4conj(a.c2) });

/**
 * Multiply f by a line l = L0 + L2·w² whose L0 = l00 + l01·v and L2 = l20 (all in Fp2): the shape
 * every Miller-loop line takes on the M-type twist (see pairing.ts). 12 Fp2-products, not 18.
 */
export function f12mulLine(f: Fp12, l00: Fp2, l01: Fp2, l20: Fp2): Fp12 {
  const L0: Fp4 = { c0: l00, c1: l01 };
  const aL0 = f4mul(f.c0, L0);
  const bL0 = f4mul(f.c1, L0);
  const cL0 = f4mul(f.c2, L0);
  const aL2 = f4mulFp2(f.c0, l20);
  const bL2 = f4mulFp2(f.c1, l20);
  const cL2 = f4mulFp2(f.c2, l20);
  // (a + bw + cw²)(L0 + L2w²) = (aL0 + v bL2) + (bL0 + v cL2)w + (cL0 + aL2)w²
  return { c0: f4add(aL0, f4mulV(bL2)), c1: f4add(bL0, f4mulV(cL2)), c2: f4add(cL0, aL2) };
}

// Frobenius: w^(p^n) = w · u^((p^n − 1)/6), so the coefficient of w^k (k = i + 3j for w^i v^j) is
// multiplied by γ[n][k] = u^(k(p^n − 1)/6), after conjugating the Fp2 coefficient when n is odd.
const U: Fp2 = { c0: 0n, c1: 1n };
const GAMMA: Fp2[][] = [1n, 2n, 3n].map((n) => {
  const base = f2pow(U, (p ** n - 1n) / 6n);
  const row: Fp2[] = [F2_ONE];
  for (let k = 1; k < 6; k++) row.push(f2mul(row[k - 1]!, base));
  return row;
});

export function f12frob(a: Fp12, n: 1 | 2 | 3): Fp12 {
  const g = GAMMA[n - 1]!;
  const c = n === 2 ? (x: Fp2) => x : f2conj;
  const term = (x: Fp2, k: number) => (k === 0 ? c(x) : f2mul(c(x), g[k]!));
  return {
    c0: { c0: term(a.c0.c0, 0), c1: term(a.c0.c1, 3) },
    c1: { c0: term(a.c1.c0, 1), c1: term(a.c1.c1, 4) },
    c2: { c0: term(a.c2.c0, 2), c1: term(a.c2.c1, 5) },
  };
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

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const x of parts) len += x.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const x of parts) {
    out.set(x, off);
    off += x.length;
  }
  return out;
}

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

const f2bytes = (a: Fp2) => concatBytes(bigToBytes(a.c1), bigToBytes(a.c0));

export function f12toBytes(f: Fp12): Uint8Array {
  return concatBytes(
    f2bytes(f.c2.c1), f2bytes(f.c2.c0),
    f2bytes(f.c1.c1), f2bytes(f.c1.c0),
    f2bytes(f.c0.c1), f2bytes(f.c0.c0),
  );
}

/** Parse 384 bytes into Fp12; rejects coefficients ≥ p. */
export function f12fromBytes(b: Uint8Array): Fp12 {
  if (b.length !== 384) throw new RangeError('Fp12: expected 384 bytes');
  const fp = (i: number) => {
    const x = bytesToBig(b.subarray(32 * i, 32 * i + 32));
    if (x >= p) throw new RangeError('Fp12: coefficient not reduced mod p');
    return x;
  };
  const fp2 = (i: number): Fp2 => ({ c1: fp(2 * i), c0: fp(2 * i + 1) });
  return { c2: { c1: fp2(0), c0: fp2(1) }, c1: { c1: fp2(2), c0: fp2(3) }, c0: { c1: fp2(4), c0: fp2(5) } };
}
