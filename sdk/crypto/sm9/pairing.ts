// R-ate pairing of GM/T 0044 part 1 (B.4) on the SM9 BN curve, with the exact final exponent
// (p¹²−1)/N, reusable Miller-loop line tables for fixed G2 points, and fixed-base GT powers.

import {
  F12_ONE, md, N, f12conj, f12cycSqr, f12frob, f12inv, f12mul, f12mulLine, f12sqr, f2dbl, f2mul,
  f2mulFp, f2neg, f2sqr, f2sub, t, type Fp12, type Fp2,
} from './fields.js';
import { G2, psi, type G1Point, type G2Point } from './curves.js';

/** Miller loop length 6t+2 of the R-ate pairing, most significant bit first. */
export const ATE_LOOP = 6n * t + 2n;
const LOOP_BITS = ATE_LOOP.toString(2);

/**
 * A line through points of the twist, with its P-dependent parts factored out:
 * l(P) = L00 + (L01·yP)·v + (L20·xP)·w² in Fp12 = Fp4[w], up to an Fp2 factor that the final
 * exponentiation kills.
 */
interface Line {
  readonly L00: Fp2;
  readonly L01: Fp2;
  readonly L20: Fp2;
}

/** The line coefficients of the whole Miller loop for one G2 point, in loop order. */
export interface G2Prepared {
  readonly lines: readonly Line[];
}

interface Proj {
  X: Fp2;
  Y: Fp2;
  Z: Fp2;
}

// The step formulas below run on raw Fp coordinates with one reduction per output coordinate:
// reductions cost several products each. b' = 5u, so products by multiples of b' are shifts and
// small multiples: (z0 + z1u)·k·u = −2k·z1 + k·z0·u.

/** Unreduced (x0 + x1u)(y0 + y1u). */
const mul2 = (x0: bigint, x1: bigint, y0: bigint, y1: bigint): [bigint, bigint] => {
  const m0 = x0 * y0, m1 = x1 * y1;
  return [m0 - (m1 << 1n), (x0 + x1) * (y0 + y1) - m0 - m1];
};
const sqr2 = (x0: bigint, x1: bigint): [bigint, bigint] => {
  const m = x0 * x1;
  return [(x0 + x1) * (x0 - (x1 << 1n)) + m, m << 1n];
};
const r2 = (c: [bigint, bigint]): Fp2 => ({ c0: md(c[0]), c1: md(c[1]) });

// Doubling in homogeneous coordinates on y² = x³ + b'. The tangent, scaled by 2YZ, is
// (Y² − 3b'Z²) + 2YZ·yP·v − 3X²·xP·w²; the point doubles to (2XY(Y²−9b'Z²), (Y²+9b'Z²)² − 108b'²Z⁴, 8Y³Z).
function doubleStep(T: Proj): Line {
  const { X, Y, Z } = T;
  const YY = r2(sqr2(Y.c0, Y.c1));
  const ZZ = r2(sqr2(Z.c0, Z.c1));
  const XX = sqr2(X.c0, X.c1);
  const YZ = r2(mul2(Y.c0, Y.c1, Z.c0, Z.c1));
  const XY = r2(mul2(X.c0, X.c1, Y.c0, Y.c1));
  // 9b'Z² = 45u·ZZ, 3b'Z² = 15u·ZZ
  const bZ9_0 = -90n * ZZ.c1, bZ9_1 = 45n * ZZ.c0;
  const line: Line = {
    L00: { c0: md(YY.c0 + 30n * ZZ.c1), c1: md(YY.c1 - 15n * ZZ.c0) },
    L01: { c0: md(YZ.c0 << 1n), c1: md(YZ.c1 << 1n) },
    L20: { c0: md(-3n * XX[0]), c1: md(-3n * XX[1]) },
  };
  const X3 = mul2(XY.c0, XY.c1, YY.c0 - bZ9_0, YY.c1 - bZ9_1);
  const S = sqr2(md(YY.c0 + bZ9_0), md(YY.c1 + bZ9_1));
  const Z4 = sqr2(ZZ.c0, ZZ.c1); // 108b'² = 108·25·u² = −5400
  const Z3 = mul2(YY.c0, YY.c1, YZ.c0, YZ.c1);
  T.X = { c0: md(X3[0] << 1n), c1: md(X3[1] << 1n) };
  T.Y = { c0: md(S[0] + 5400n * Z4[0]), c1: md(S[1] + 5400n * Z4[1]) };
  T.Z = { c0: md(Z3[0] << 3n), c1: md(Z3[1] << 3n) };
  return line;
}

// Mixed addition T + Q, Q affine: with θ = yQ·Z − Y, δ = xQ·Z − X the chord through Q, scaled by δ, is
// (θxQ − δyQ) + δ·yP·v − θ·xP·w².
function addStep(T: Proj, xQ: Fp2, yQ: Fp2): Line {
  const { X, Y, Z } = T;
  const theta = f2sub(f2mul(yQ, Z), Y);
  const delta = f2sub(f2mul(xQ, Z), X);
  const line: Line = {
    L00: f2sub(f2mul(theta, xQ), f2mul(delta, yQ)),
    L01: delta,
    L20: f2neg(theta),
  };
  const C = f2sqr(theta);
  const D = f2sqr(delta);
  const E = f2mul(delta, D);
  const F = f2mul(Z, C);
  const G = f2mul(X, D);
  const H = f2sub(f2sub(F, E), f2dbl(G));
  T.X = f2mul(delta, H);
  T.Y = f2sub(f2mul(theta, f2sub(G, H)), f2mul(Y, E));
  T.Z = f2mul(Z, E);
  return line;
}

/** Precompute the Miller-loop lines for Q; Q must already be validated as a point of G2. */
export function prepareG2(Q: G2Point): G2Prepared {
  const q = Q.toAffine();
  const T: Proj = { X: q.x, Y: q.y, Z: { c0: 1n, c1: 0n } };
  const lines: Line[] = [];
  for (let i = 1; i < LOOP_BITS.length; i++) {
    lines.push(doubleStep(T));
    if (LOOP_BITS[i] === '1') lines.push(addStep(T, q.x, q.y));
  }
  // R-ate tail: T + π(Q), then T − π²(Q).
  const Q1 = psi(G2, Q).toAffine();
  const Q2 = psi(G2, psi(G2, Q)).toAffine();
  lines.push(addStep(T, Q1.x, Q1.y));
  lines.push(addStep(T, Q2.x, f2neg(Q2.y)));
  return { lines };
}

/** Miller loop f_{6t+2,Q}(P)·l_{T,π(Q)}(P)·l_{T+π(Q),−π²(Q)}(P), up to factors in proper subfields. */
export function millerLoop(P: G1Point, prep: G2Prepared): Fp12 {
  const { x: xP, y: yP } = P.toAffine();
  const lines = prep.lines;
  let f = F12_ONE;
  let k = 0;
  const apply = (l: Line) => {
    f = f12mulLine(f, l.L00, f2mulFp(l.L01, yP), f2mulFp(l.L20, xP));
  };
  for (let i = 1; i < LOOP_BITS.length; i++) {
    if (i > 1) f = f12sqr(f);
    apply(lines[k++]!);
    if (LOOP_BITS[i] === '1') apply(lines[k++]!);
  }
  apply(lines[k++]!);
  apply(lines[k++]!);
  return f;
}

/** Non-adjacent form of t, most significant digit first: 9 non-zero digits instead of 14 ones. */
const T_NAF: number[] = (() => {
  const digits: number[] = [];
  for (let k = t; k > 0n; k >>= 1n) {
    if (k & 1n) {
      const d = 2 - Number(k & 3n); // 1 or −1
      digits.push(d);
      k -= BigInt(d);
    } else digits.push(0);
  }
  return digits.reverse();
})();

/** f^t in the cyclotomic subgroup, where f⁻¹ is the free conjugate: signed square-and-multiply. */
function cycExpT(f: Fp12): Fp12 {
  const fInv = f12conj(f);
  let r = f;
  for (let i = 1; i < T_NAF.length; i++) {
    r = f12cycSqr(r);
    const d = T_NAF[i]!;
    if (d === 1) r = f12mul(r, f);
    else if (d === -1) r = f12mul(r, fInv);
  }
  return r;
}

/**
 * f^((p¹²−1)/N). Easy part (p⁶−1)(p²+1); hard part (p⁴−p²+1)/N written exactly as
 * λ0 + λ1·p + λ2·p² + λ3·p³ with λ3 = 1, λ2 = 6t²+1, λ1 = −36t³−18t²−12t+1, λ0 = −36t³−30t²−18t−2
 * (Scott et al., "On the final exponentiation for calculating pairings on ordinary elliptic
 * curves", 2009). Shortcuts that raise to a multiple of this exponent would change every value.
 */
export function finalExponentiation(f: Fp12): Fp12 {
  let m = f12mul(f12conj(f), f12inv(f));
  m = f12mul(f12frob(m, 2), m);
  const a = cycExpT(m); // m^t
  const b = cycExpT(a); // m^t²
  const c = cycExpT(b); // m^t³
  const sq = f12cycSqr;
  const a2 = sq(a), a4 = sq(a2), a6 = f12mul(a4, a2), a12 = sq(a6);
  const b2 = sq(b), b4 = sq(b2), b6 = f12mul(b4, b2), b12 = sq(b6), b18 = f12mul(b12, b6);
  const c4 = sq(sq(c)), c32 = sq(sq(sq(c4))), c36 = f12mul(c32, c4);
  const x = f12mul(f12mul(c36, b18), a12); // m^(36t³+18t²+12t)
  const y = f12mul(f12mul(f12mul(x, b12), a6), sq(m)); // m^(36t³+30t²+18t+2)
  const e3 = f12frob(m, 3);
  const e2 = f12frob(f12mul(b6, m), 2);
  const e1 = f12frob(f12mul(f12conj(x), m), 1);
  const e0 = f12conj(y);
  return f12mul(f12mul(e3, e2), f12mul(e1, e0));
}

/** e(P, Q) for validated P ∈ G1 and Q ∈ G2 (Q given as its prepared line table). */
export function pair(P: G1Point, Q: G2Prepared): Fp12 {
  return finalExponentiation(millerLoop(P, Q));
}

/** x^e for x in GT (cyclotomic subgroup), e ≥ 0; variable base, 4-bit fixed window. */
export function gtPow(x: Fp12, e: bigint): Fp12 {
  e %= N;
  if (e === 0n) return F12_ONE;
  const tbl: Fp12[] = [F12_ONE, x];
  for (let i = 2; i < 16; i++) tbl.push(f12mul(tbl[i - 1]!, x));
  const hex = e.toString(16);
  let r = tbl[parseInt(hex[0]!, 16)]!;
  for (let i = 1; i < hex.length; i++) {
    r = f12cycSqr(f12cycSqr(f12cycSqr(f12cycSqr(r))));
    const d = parseInt(hex[i]!, 16);
    if (d) r = f12mul(r, tbl[d]!);
  }
  return r;
}

const WINDOW = 6;
const WINDOWS = Math.ceil((N.toString(2).length + 1) / WINDOW);

/**
 * Fixed-base powers of one GT element with signed 6-bit digits: table[i][d] = g^(d·64^i) for
 * d = 1..32, negative digits use the conjugate (the inverse in GT), so g^e costs ≤ 43 products.
 */
export class GtFixedBase {
  private readonly table: Fp12[][] = [];
  constructor(readonly g: Fp12) {
    let base = g;
    for (let i = 0; i < WINDOWS; i++) {
      const row: Fp12[] = [F12_ONE, base];
      for (let d = 2; d <= 32; d++) row.push(d % 2 === 0 ? f12cycSqr(row[d / 2]!) : f12mul(row[d - 1]!, base));
      this.table.push(row);
      base = f12cycSqr(row[32]!);
    }
  }
  pow(e: bigint): Fp12 {
    e %= N;
    if (e < 0n) e += N;
    let r: Fp12 | undefined;
    for (let i = 0; e > 0n; i++) {
      let d = Number(e & 63n);
      e >>= 6n;
      if (d > 32) {
        d -= 64;
        e += 1n;
      }
      if (d === 0) continue;
      const x = d > 0 ? this.table[i]![d]! : f12conj(this.table[i]![-d]!);
      r = r ? f12mul(r, x) : x;
    }
    return r ?? F12_ONE;
  }
}
