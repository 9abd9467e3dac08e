// Property tests of SM9: tower and pairing algebra (bilinearity, Frobenius, cyclotomic squaring),
// round trips of signature, KEM and encryption, and rejection of altered or malformed inputs.
// No external vectors here; the known answers live in sm9.kat.test.ts.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CryptoError, EticketError, InvalidInputError } from '../../errors.js';
import {
  N, decapsulate, decrypt, encapsulate, encrypt, extractEncPrivateKey, extractSignPrivateKey,
  generateEncMasterKey, generateSignMasterKey, pairing, sign, verify, clearCaches, prepareSignMasterPublicKey,
} from './index.js';
import { G1, G2, bTwist, g1FromBytes, g1ToBytes, g2FromBytes, g2ToBytes, psi } from './curves.js';
import {
  F12_ONE, bigToBytes, f12conj, f12cycSqr, f12eq, f12frob, f12inv, f12mul, f12pow, f12sqr, f12toBytes,
  f12fromBytes, f2add, f2mul, f2sqr, f2sqrt, f2eq, p, t, type Fp12,
} from './fields.js';
import { finalExponentiation, gtPow, millerLoop, pair, prepareG2 } from './pairing.js';

const scalar = fc.bigInt({ min: 1n, max: N - 1n });
const utf8 = (s: string) => new TextEncoder().encode(s);
const RUNS = { numRuns: 8 };

/** A GT element and a raw Miller-loop value, shared by the algebra tests. */
const P = G1.BASE.multiply(0x1234567n);
const Q = G2.BASE.multiply(0x7654321n);
const raw: Fp12 = millerLoop(P, prepareG2(Q));
const gt: Fp12 = finalExponentiation(raw);

describe('Fp12 tower', () => {
  it('inverse, Frobenius = p-th power, conjugation = p⁶-th power', () => {
    expect(f12eq(f12mul(raw, f12inv(raw)), F12_ONE)).toBe(true);
    expect(f12eq(f12frob(raw, 1), f12pow(raw, p))).toBe(true);
    expect(f12eq(f12frob(raw, 2), f12frob(f12frob(raw, 1), 1))).toBe(true);
    expect(f12eq(f12frob(raw, 3), f12frob(f12frob(raw, 2), 1))).toBe(true);
    expect(f12eq(f12conj(raw), f12frob(f12frob(raw, 3), 3))).toBe(true);
  });
  it('cyclotomic squaring equals squaring on GT, and GT has order N', () => {
    expect(f12eq(f12cycSqr(gt), f12sqr(gt))).toBe(true);
    expect(f12eq(f12sqr(raw), f12mul(raw, raw))).toBe(true);
    expect(f12eq(gtPow(gt, N - 1n), f12conj(gt))).toBe(true);
    expect(f12eq(f12pow(gt, N), F12_ONE)).toBe(true);
  });
  it('encoding round trip', () => expect(f12eq(f12fromBytes(f12toBytes(raw)), raw)).toBe(true));
});

describe('pairing', () => {
  it('hard-part decomposition is the exact exponent (p⁴ − p² + 1)/N', () => {
    const e = p ** 4n - p ** 2n + 1n;
    expect(e % N).toBe(0n);
    const lambda = [-36n * t ** 3n - 30n * t ** 2n - 18n * t - 2n, -36n * t ** 3n - 18n * t ** 2n - 12n * t + 1n, 6n * t ** 2n + 1n, 1n];
    expect(lambda.reduce((acc, l, i) => acc + l * p ** BigInt(i), 0n)).toBe(e / N);
  });
  it('is bilinear: e([a]P, [b]Q) = e(P, Q)^(ab)', () => {
    fc.assert(
      fc.property(scalar, scalar, (a, b) => {
        const lhs = pair(P.multiply(a), prepareG2(Q.multiply(b)));
        return f12eq(lhs, gtPow(gt, (a * b) % N));
      }),
      { numRuns: 3 },
    );
  });
  it('is non-degenerate and matches the byte API', () => {
    expect(f12eq(gt, F12_ONE)).toBe(false);
    expect(pairing(g1ToBytes(P), g2ToBytes(Q))).toEqual(f12toBytes(gt));
  });
  it('ψ acts on G2 as multiplication by p mod N', () => {
    expect(psi(G2, Q).equals(Q.multiply(p % N))).toBe(true);
  });
});

/** A point on the twist y² = x³ + 5u outside the order-N subgroup (cofactor 2p − N is huge). */
function twistPointOutsideG2(): Uint8Array {
  for (let x0 = 1n; ; x0++) {
    const x = { c0: x0, c1: 1n };
    const rhs = f2add(f2mul(f2sqr(x), x), bTwist);
    let y;
    try {
      y = f2sqrt(rhs);
    } catch {
      continue;
    }
    expect(f2eq(f2sqr(y), rhs)).toBe(true);
    return Uint8Array.from([...bigToBytes(x.c1), ...bigToBytes(x.c0), ...bigToBytes(y.c1), ...bigToBytes(y.c0)]);
  }
}

describe('point validation', () => {
  it('rejects G2 points off the twist or outside the subgroup', () => {
    const bad = twistPointOutsideG2();
    expect(() => g2FromBytes(bad)).toThrow(InvalidInputError);
    expect(() => pairing(g1ToBytes(P), bad)).toThrow(InvalidInputError);
    expect(() => verify(bad, utf8('a'), utf8('m'), new Uint8Array(97))).toThrow(InvalidInputError);
    const off = g2ToBytes(Q);
    off[127]! ^= 1;
    expect(() => g2FromBytes(off)).toThrow(InvalidInputError);
    expect(() => g2FromBytes(new Uint8Array(128))).toThrow(InvalidInputError);
    expect(() => g2FromBytes(new Uint8Array(127))).toThrow(InvalidInputError);
  });
  it('the twist has order N·(2p − N) and accepts the 0x04-prefixed forms', () => {
    const bad = twistPointOutsideG2();
    const Qb = G2.fromAffine({
      x: { c1: BigInt('0x' + Buffer.from(bad.subarray(0, 32)).toString('hex')), c0: BigInt('0x' + Buffer.from(bad.subarray(32, 64)).toString('hex')) },
      y: { c1: BigInt('0x' + Buffer.from(bad.subarray(64, 96)).toString('hex')), c0: BigInt('0x' + Buffer.from(bad.subarray(96)).toString('hex')) },
    });
    // noble's multiply only takes scalars below N, hence plain double-and-add here
    const mulAny = (X: typeof Qb, k: bigint) => {
      let r = G2.ZERO;
      for (let i = k.toString(2).length - 1; i >= 0; i--) {
        r = r.double();
        if ((k >> BigInt(i)) & 1n) r = r.add(X);
      }
      return r;
    };
    expect(mulAny(Qb, N).is0()).toBe(false);
    expect(mulAny(Qb, N * (2n * p - N)).is0()).toBe(true);
    expect(g2FromBytes(Uint8Array.from([4, ...g2ToBytes(Q)])).equals(Q)).toBe(true);
    expect(g1FromBytes(Uint8Array.from([4, ...g1ToBytes(P)])).equals(P)).toBe(true);
    expect(() => g1FromBytes(Uint8Array.from([5, ...g1ToBytes(P)]))).toThrow(InvalidInputError);
  });
  it('rejects G1 points off the curve, unreduced or of the wrong length', () => {
    const off = g1ToBytes(P);
    off[63]! ^= 1;
    expect(() => g1FromBytes(off)).toThrow(InvalidInputError);
    expect(() => g1FromBytes(new Uint8Array(64))).toThrow(InvalidInputError);
    expect(() => g1FromBytes(new Uint8Array(63))).toThrow(InvalidInputError);
    const unreduced = g1ToBytes(P);
    unreduced.set(bigToBytes(P.toAffine().x + p), 0); // x + p fits in 32 bytes here
    expect(() => g1FromBytes(unreduced)).toThrow(InvalidInputError);
  });
  it('rejects scalars outside [1, N-1] and bad parameters', () => {
    expect(() => generateSignMasterKey(new Uint8Array(32))).toThrow(InvalidInputError);
    expect(() => generateSignMasterKey(bigToBytes(N))).toThrow(InvalidInputError);
    expect(() => generateEncMasterKey(new Uint8Array(31).fill(1))).toThrow(InvalidInputError);
    const m = generateSignMasterKey();
    expect(() => extractSignPrivateKey(m.privateKey, new Uint8Array(0))).toThrow(InvalidInputError);
    expect(() => extractSignPrivateKey(m.privateKey, utf8('x'), 256)).toThrow(InvalidInputError);
    expect(() => extractSignPrivateKey(bigToBytes(N), utf8('x'))).toThrow(InvalidInputError);
    const e = generateEncMasterKey();
    expect(() => encapsulate(e.publicKey, utf8('x'), 0)).toThrow(InvalidInputError);
    expect(() => encrypt(e.publicKey, utf8('x'), utf8('m'), bigToBytes(N))).toThrow(InvalidInputError);
    expect(() => encrypt(m.publicKey, utf8('x'), utf8('m'))).toThrow(InvalidInputError); // G2 key as G1
  });
});

describe('signature', () => {
  const master = generateSignMasterKey();
  it('round trip; any changed byte of signature, message or identity is rejected', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }), fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.integer({ min: 1, max: 255 }),
        (idStr, msg, pos, delta) => {
          const id = utf8(idStr);
          const ds = extractSignPrivateKey(master.privateKey, id);
          const sig = sign(ds, master.publicKey, msg);
          expect(sig.length).toBe(97);
          expect(verify(master.publicKey, id, msg, sig)).toBe(true);
          const badSig = sig.slice();
          badSig[pos % sig.length]! ^= delta;
          expect(verify(master.publicKey, id, msg, badSig)).toBe(false);
          const badMsg = Uint8Array.from([...msg, 0]);
          expect(verify(master.publicKey, id, badMsg, sig)).toBe(false);
          expect(verify(master.publicKey, utf8(idStr + '.'), msg, sig)).toBe(false);
        },
      ),
      RUNS,
    );
  });
  it('returns false for malformed signatures and throws for malformed keys', () => {
    const id = utf8('alice');
    expect(verify(master.publicKey, id, utf8('m'), new Uint8Array(97))).toBe(false);
    expect(verify(master.publicKey, id, utf8('m'), new Uint8Array(5))).toBe(false);
    expect(() => verify(master.publicKey.subarray(1), id, utf8('m'), new Uint8Array(97))).toThrow(InvalidInputError);
    expect(() => sign(new Uint8Array(64), master.publicKey, utf8('m'))).toThrow(InvalidInputError);
  });
});

describe('caches', () => {
  it('results do not depend on the caches', () => {
    const m = generateSignMasterKey();
    const id = utf8('carol');
    const ds = extractSignPrivateKey(m.privateKey, id);
    const sig = sign(ds, m.publicKey, utf8('x'));
    prepareSignMasterPublicKey(m.publicKey);
    expect(verify(m.publicKey, id, utf8('x'), sig)).toBe(true);
    clearCaches();
    expect(verify(m.publicKey, id, utf8('x'), sig)).toBe(true);
    expect(verify(m.publicKey, utf8('dave'), utf8('x'), sig)).toBe(false);
  });
});

describe('key encapsulation and encryption', () => {
  const master = generateEncMasterKey();
  it('KEM round trip', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 100 }), (idStr, klen) => {
        const id = utf8(idStr);
        const de = extractEncPrivateKey(master.privateKey, id);
        const { key, encapsulation } = encapsulate(master.publicKey, id, klen);
        expect(key.length).toBe(klen);
        expect(decapsulate(de, id, encapsulation, klen)).toEqual(key);
        // another identity's key yields another K
        expect(decapsulate(de, utf8(idStr + '.'), encapsulation, klen)).not.toEqual(key);
      }),
      RUNS,
    );
  });
  it('encryption round trip; any changed ciphertext byte is rejected with a typed error', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }), fc.uint8Array({ minLength: 1, maxLength: 80 }), fc.nat(), fc.integer({ min: 1, max: 255 }),
        (idStr, msg, pos, delta) => {
          const id = utf8(idStr);
          const de = extractEncPrivateKey(master.privateKey, id);
          const ct = encrypt(master.publicKey, id, msg);
          expect(ct.length).toBe(64 + 32 + msg.length);
          expect(decrypt(de, id, ct)).toEqual(msg);
          const bad = ct.slice();
          const i = pos % ct.length;
          bad[i]! ^= delta;
          expect(() => decrypt(de, id, bad)).toThrow(i < 64 ? EticketError : CryptoError);
          expect(() => decrypt(de, utf8(idStr + '.'), ct)).toThrow(CryptoError);
        },
      ),
      RUNS,
    );
  });
  it('rejects an empty message and a short ciphertext', () => {
    const id = utf8('bob');
    const de = extractEncPrivateKey(master.privateKey, id);
    expect(() => encrypt(master.publicKey, id, new Uint8Array(0))).toThrow(InvalidInputError);
    expect(() => decrypt(de, id, new Uint8Array(96))).toThrow(InvalidInputError);
    expect(() => decapsulate(de, id, new Uint8Array(64), 16)).toThrow(InvalidInputError);
  });
});
