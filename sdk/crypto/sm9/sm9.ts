// SM9 identity-based signature, key encapsulation and encryption (GM/T 0044-2016 parts 2 and 4,
// GB/T 38635): key generation, user key extraction and the byte-level algorithms of the standard.

import { randomBytes } from 'node:crypto';
import { CryptoError, InvalidInputError } from '../../errors.js';
import { Fn, N, bigToBytes, bytesToBig, concatBytes, f12mul, f12toBytes, type Fp12 } from './fields.js';
import {
  G1, G2, g1FromBytes, g1ToBytes, g2FromBytes, g2ToBytes, type G1Point, type G2Point,
} from './curves.js';
import { GtFixedBase, pair, prepareG2, type G2Prepared } from './pairing.js';
import { H1, H2, kdf, sm3 } from './hash.js';

/** Identifier-hash byte of the standard: signing keys. */
export const HID_SIGN = 0x01;
/** Identifier-hash byte of the standard: key exchange (not implemented here). */
export const HID_KEY_EXCHANGE = 0x02;
/** Identifier-hash byte of the standard: encryption and key encapsulation. */
export const HID_ENCRYPT = 0x03;

/** Length of the MAC key K2 and of C3 in the encryption scheme (SM3 output). */
const MAC_KEY_LEN = 32;
const MAX_KEY_LEN = 1 << 24;

export interface MasterKeyPair {
  /** ks or ke, 32 bytes big-endian. */
  privateKey: Uint8Array;
  /** Sign: Ppub-s ∈ G2, 128 bytes x1‖x0‖y1‖y0. Encrypt: Ppub-e ∈ G1, 64 bytes x‖y. */
  publicKey: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Input checks

function assertBytes(x: unknown, what: string): asserts x is Uint8Array {
  if (!(x instanceof Uint8Array)) throw new InvalidInputError(`${what}: expected Uint8Array`);
}

function checkId(id: unknown): Uint8Array {
  assertBytes(id, 'id');
  if (id.length === 0) throw new InvalidInputError('id: must not be empty');
  return id;
}

function checkHid(hid: unknown): number {
  if (typeof hid !== 'number' || !Number.isInteger(hid) || hid < 0 || hid > 0xff)
    throw new InvalidInputError('hid: expected an integer in [0, 255]');
  return hid;
}

/** A scalar in [1, N−1] given as 1..32 big-endian bytes (the Annex D random r is 30 bytes). */
function parseScalar(bytes: unknown, what: string): bigint {
  assertBytes(bytes, what);
  if (bytes.length === 0 || bytes.length > 32) throw new InvalidInputError(`${what}: expected 1..32 bytes, got ${bytes.length}`);
  const k = bytesToBig(bytes);
  if (k === 0n || k >= N) throw new InvalidInputError(`${what}: scalar outside [1, N-1]`);
  return k;
}

function parseMasterPrivateKey(bytes: unknown): bigint {
  assertBytes(bytes, 'master private key');
  if (bytes.length !== 32) throw new InvalidInputError(`master private key: expected 32 bytes, got ${bytes.length}`);
  return parseScalar(bytes, 'master private key');
}

/** Uniform in [1, N−1]: 64 extra bits make the modular bias negligible (< 2⁻⁶⁴). */
function randomScalar(): bigint {
  return (bytesToBig(randomBytes(40)) % (N - 1n)) + 1n;
}

function checkKeyLength(keyLength: unknown): number {
  if (typeof keyLength !== 'number' || !Number.isInteger(keyLength) || keyLength < 1 || keyLength > MAX_KEY_LEN)
    throw new InvalidInputError(`keyLength: expected an integer in [1, ${MAX_KEY_LEN}]`);
  return keyLength;
}

const isAllZero = (b: Uint8Array) => b.every((x) => x === 0);
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// ---------------------------------------------------------------------------------------------
// Caches of per-key precomputation, keyed by the key bytes. Parsing a G2 key includes the subgroup
// check and the pairing value is the costliest step, so each is paid once per key.

class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
      return v;
    }
    v = make();
    this.map.set(key, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
    return v;
  }
  clear(): void {
    this.map.clear();
  }
}

interface SignMasterPublic {
  readonly Ppub: G2Point;
  /** g = e(P1, Ppub-s) with fixed-base powers. */
  readonly g: GtFixedBase;
}
interface EncMasterPublic {
  readonly Ppub: G1Point;
  /** g = e(Ppub-e, P2) with fixed-base powers. */
  readonly g: GtFixedBase;
}

// A GT fixed-base table is about 1 MB, so few master keys are kept.
const signMasterCache = new LruCache<SignMasterPublic>(8);
const encMasterCache = new LruCache<EncMasterPublic>(8);
const encUserKeyCache = new LruCache<G2Prepared>(64);
const signUserKeyCache = new LruCache<G1Point>(64);
/** Lines of P = [H1(ID‖hid)]P2 + Ppub-s per (master key, identity): verifiers see few signers. */
const verifierLineCache = new LruCache<G2Prepared | null>(256);

/**
 * Forget every cached key. The signing-key and decryption-key caches hold values derived from
 * user private keys; call this when a key is retired or before handing the process to other code.
 */
export function clearCaches(): void {
  for (const c of [signMasterCache, encMasterCache, encUserKeyCache, signUserKeyCache, verifierLineCache]) c.clear();
}

let P2Prepared: G2Prepared | undefined;
const p2Lines = () => (P2Prepared ??= prepareG2(G2.BASE));

function signMasterPublic(mpk: unknown): SignMasterPublic {
  assertBytes(mpk, 'sign master public key');
  return signMasterCache.get(toHex(mpk), () => {
    const Ppub = g2FromBytes(mpk, 'sign master public key');
    return { Ppub, g: new GtFixedBase(pair(G1.BASE, prepareG2(Ppub))) };
  });
}

function encMasterPublic(mpk: unknown): EncMasterPublic {
  assertBytes(mpk, 'encryption master public key');
  return encMasterCache.get(toHex(mpk), () => {
    const Ppub = g1FromBytes(mpk, 'encryption master public key').precompute(8, false);
    return { Ppub, g: new GtFixedBase(pair(Ppub, p2Lines())) };
  });
}

function encUserKey(de: unknown): G2Prepared {
  assertBytes(de, 'encryption private key');
  return encUserKeyCache.get(toHex(de), () => prepareG2(g2FromBytes(de, 'encryption private key')));
}

function signUserKey(ds: unknown): G1Point {
  assertBytes(ds, 'signing private key');
  return signUserKeyCache.get(toHex(ds), () => g1FromBytes(ds, 'signing private key').precompute(4, false));
}

/** Warm the caches for a signing master public key: parse, subgroup check, g = e(P1, Ppub-s), tables. */
export function prepareSignMasterPublicKey(masterPublicKey: Uint8Array): void {
  signMasterPublic(masterPublicKey);
}
/** Warm the caches for an encryption master public key: g = e(Ppub-e, P2) and tables. */
export function prepareEncMasterPublicKey(masterPublicKey: Uint8Array): void {
  encMasterPublic(masterPublicKey);
}
/** Warm the caches for an encryption private key: its Miller-loop line table. */
export function prepareEncPrivateKey(userPrivateKey: Uint8Array): void {
  encUserKey(userPrivateKey);
}

// ---------------------------------------------------------------------------------------------
// Keys

/** ks (or ke) ∈ [1, N−1]; from `rand` (32 bytes) when given, else from the system CSPRNG. */
function masterScalar(rand: Uint8Array | undefined): bigint {
  if (rand === undefined) return randomScalar();
  assertBytes(rand, 'rand');
  if (rand.length !== 32) throw new InvalidInputError(`rand: expected 32 bytes, got ${rand.length}`);
  return parseScalar(rand, 'rand');
}

/** Signing master key: ks and Ppub-s = [ks]P2 (G2, 128 bytes). */
export function generateSignMasterKey(rand?: Uint8Array): MasterKeyPair {
  const ks = masterScalar(rand);
  return { privateKey: bigToBytes(ks), publicKey: g2ToBytes(G2.BASE.multiply(ks)) };
}

/** Encryption master key: ke and Ppub-e = [ke]P1 (G1, 64 bytes). */
export function generateEncMasterKey(rand?: Uint8Array): MasterKeyPair {
  const ke = masterScalar(rand);
  return { privateKey: bigToBytes(ke), publicKey: g1ToBytes(G1.BASE.multiply(ke)) };
}

/** t2 = k·(H1(ID‖hid) + k)⁻¹ mod N, the scalar of every user private key. */
function userKeyScalar(k: bigint, id: Uint8Array, hid: number): bigint {
  const t1 = Fn.add(H1(concatBytes(id, Uint8Array.of(hid))), k);
  // t1 = 0 happens for one identity per master key; the standard asks to regenerate the master key.
  if (t1 === 0n) throw new CryptoError('H1(ID‖hid) + master key ≡ 0 (mod N): regenerate the master key');
  return Fn.mul(k, Fn.inv(t1));
}

/** dsA = [t2]P1: the user's signing key (G1, 64 bytes x‖y). */
export function extractSignPrivateKey(masterPrivateKey: Uint8Array, id: Uint8Array, hid: number = HID_SIGN): Uint8Array {
  const ks = parseMasterPrivateKey(masterPrivateKey);
  return g1ToBytes(G1.BASE.multiply(userKeyScalar(ks, checkId(id), checkHid(hid))));
}

/** deB = [t2]P2: the user's decryption key (G2, 128 bytes x1‖x0‖y1‖y0). */
export function extractEncPrivateKey(masterPrivateKey: Uint8Array, id: Uint8Array, hid: number = HID_ENCRYPT): Uint8Array {
  const ke = parseMasterPrivateKey(masterPrivateKey);
  return g2ToBytes(G2.BASE.multiply(userKeyScalar(ke, checkId(id), checkHid(hid))));
}

// ---------------------------------------------------------------------------------------------
// Signature (part 2, clause 6): output h ‖ S, h 32 bytes, S = 04 ‖ x ‖ y (97 bytes in all).

export const SIGNATURE_LENGTH = 32 + 65;

/** Sign `message` with dsA; `rand` (1..32 bytes, in [1, N−1]) fixes r for known-answer tests. */
export function sign(userPrivateKey: Uint8Array, masterPublicKey: Uint8Array, message: Uint8Array, rand?: Uint8Array): Uint8Array {
  const ds = signUserKey(userPrivateKey);
  const { g } = signMasterPublic(masterPublicKey);
  assertBytes(message, 'message');
  for (;;) {
    const r = rand === undefined ? randomScalar() : parseScalar(rand, 'rand');
    const w = g.pow(r);
    const h = H2(concatBytes(message, f12toBytes(w)));
    const l = Fn.sub(r, h);
    if (l === 0n) {
      if (rand !== undefined) throw new CryptoError('sign: r = h for the given rand; use another rand');
      continue;
    }
    return concatBytes(bigToBytes(h), g1ToBytes(ds.multiply(l), true));
  }
}

/** Verify an h ‖ S signature of `message` by identity `id`. False for any invalid signature. */
export function verify(masterPublicKey: Uint8Array, id: Uint8Array, message: Uint8Array, signature: Uint8Array, hid: number = HID_SIGN): boolean {
  const { Ppub, g } = signMasterPublic(masterPublicKey);
  checkId(id);
  checkHid(hid);
  assertBytes(message, 'message');
  assertBytes(signature, 'signature');
  if (signature.length !== SIGNATURE_LENGTH || signature[32] !== 0x04) return false;
  const h = bytesToBig(signature.subarray(0, 32));
  if (h === 0n || h >= N) return false;
  let S: G1Point;
  try {
    S = g1FromBytes(signature.subarray(32), 'signature S');
  } catch {
    return false;
  }
  const t = g.pow(h);
  const lines = verifierLineCache.get(`${toHex(masterPublicKey)}/${hid}/${toHex(id)}`, () => {
    const P = G2.BASE.multiplyUnsafe(H1(concatBytes(id, Uint8Array.of(hid)))).add(Ppub);
    return P.is0() ? null : prepareG2(P);
  });
  if (lines === null) return false;
  const u = pair(S, lines);
  const w = f12mul(u, t);
  return H2(concatBytes(message, f12toBytes(w))) === h;
}

// ---------------------------------------------------------------------------------------------
// Key encapsulation (part 4, clause 6) and encryption (part 4, clause 7).

interface Encapsulated {
  C: Uint8Array;
  w: Fp12;
}

/** C = [r]QB with QB = [H1(IDB‖hid)]P1 + Ppub-e, computed as [r·h1]P1 + [r]Ppub-e on fixed bases. */
function encapsulateCore(mpk: EncMasterPublic, id: Uint8Array, hid: number, r: bigint): Encapsulated {
  const h1 = H1(concatBytes(id, Uint8Array.of(hid)));
  const C = G1.BASE.multiply(Fn.mul(r, h1)).add(mpk.Ppub.multiply(r));
  if (C.is0()) throw new CryptoError('encapsulation: QB is the point at infinity for this identity');
  return { C: g1ToBytes(C), w: mpk.g.pow(r) };
}

/** KEM: returns K (keyLength bytes) and the encapsulation C (G1, 64 bytes x‖y). */
export function encapsulate(
  masterPublicKey: Uint8Array, id: Uint8Array, keyLength: number, rand?: Uint8Array, hid: number = HID_ENCRYPT,
): { key: Uint8Array; encapsulation: Uint8Array } {
  const mpk = encMasterPublic(masterPublicKey);
  checkId(id);
  checkHid(hid);
  checkKeyLength(keyLength);
  for (;;) {
    const r = rand === undefined ? randomScalar() : parseScalar(rand, 'rand');
    const { C, w } = encapsulateCore(mpk, id, hid, r);
    const key = kdf(concatBytes(C, f12toBytes(w), id), keyLength);
    if (isAllZero(key)) {
      if (rand !== undefined) throw new CryptoError('encapsulate: derived key is all zero for the given rand');
      continue;
    }
    return { key, encapsulation: C };
  }
}

/** w' = e(C, deB), checking C ∈ G1 first; also returns C as x‖y, the form hashed by the KDF. */
function decapsulateCore(de: G2Prepared, C: Uint8Array, what: string): { C: Uint8Array; w: Fp12 } {
  const Cp = g1FromBytes(C, what);
  return { C: g1ToBytes(Cp), w: pair(Cp, de) };
}

/** KEM: recover K from the encapsulation C. Throws CryptoError if K would be all zero. */
export function decapsulate(userPrivateKey: Uint8Array, id: Uint8Array, encapsulation: Uint8Array, keyLength: number): Uint8Array {
  const de = encUserKey(userPrivateKey);
  checkId(id);
  checkKeyLength(keyLength);
  assertBytes(encapsulation, 'encapsulation');
  const { C, w } = decapsulateCore(de, encapsulation, 'encapsulation');
  const key = kdf(concatBytes(C, f12toBytes(w), id), keyLength);
  if (isAllZero(key)) throw new CryptoError('decapsulate: derived key is all zero');
  return key;
}

/** Offsets of the ciphertext C1 ‖ C3 ‖ C2 (Annex D order). */
const C1_LEN = 64;
const C3_LEN = 32;

/**
 * Encrypt with the standard's sequence-cipher mode: K1 ‖ K2 = KDF(C1 ‖ w ‖ IDB, mlen + 32),
 * C2 = M ⊕ K1, C3 = SM3(C2 ‖ K2); output C1 ‖ C3 ‖ C2.
 */
export function encrypt(
  masterPublicKey: Uint8Array, id: Uint8Array, message: Uint8Array, rand?: Uint8Array, hid: number = HID_ENCRYPT,
): Uint8Array {
  const mpk = encMasterPublic(masterPublicKey);
  checkId(id);
  checkHid(hid);
  assertBytes(message, 'message');
  if (message.length === 0) throw new InvalidInputError('message: must not be empty');
  if (message.length > MAX_KEY_LEN) throw new InvalidInputError(`message: longer than ${MAX_KEY_LEN} bytes`);
  for (;;) {
    const r = rand === undefined ? randomScalar() : parseScalar(rand, 'rand');
    const { C, w } = encapsulateCore(mpk, id, hid, r);
    const k = kdf(concatBytes(C, f12toBytes(w), id), message.length + MAC_KEY_LEN);
    const k1 = k.subarray(0, message.length);
    if (isAllZero(k1)) {
      if (rand !== undefined) throw new CryptoError('encrypt: K1 is all zero for the given rand');
      continue;
    }
    const c2 = message.map((m, i) => m ^ k1[i]!);
    const c3 = sm3(c2, k.subarray(message.length));
    return concatBytes(C, c3, c2);
  }
}

/** Decrypt C1 ‖ C3 ‖ C2; throws CryptoError when C3 does not match (wrong key, id or tampering). */
export function decrypt(userPrivateKey: Uint8Array, id: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const de = encUserKey(userPrivateKey);
  checkId(id);
  assertBytes(ciphertext, 'ciphertext');
  if (ciphertext.length < C1_LEN + C3_LEN + 1)
    throw new InvalidInputError(`ciphertext: expected at least ${C1_LEN + C3_LEN + 1} bytes (C1‖C3‖C2), got ${ciphertext.length}`);
  const C1 = ciphertext.subarray(0, C1_LEN);
  const c3 = ciphertext.subarray(C1_LEN, C1_LEN + C3_LEN);
  const c2 = ciphertext.subarray(C1_LEN + C3_LEN);
  const { w } = decapsulateCore(de, C1, 'ciphertext C1');
  const k = kdf(concatBytes(C1, f12toBytes(w), id), c2.length + MAC_KEY_LEN);
  const k1 = k.subarray(0, c2.length);
  if (isAllZero(k1)) throw new CryptoError('decrypt: K1 is all zero');
  const u = sm3(c2, k.subarray(c2.length));
  let diff = 0;
  for (let i = 0; i < C3_LEN; i++) diff |= u[i]! ^ c3[i]!;
  if (diff !== 0) throw new CryptoError('decrypt: C3 does not match (wrong key or identity, or altered ciphertext)');
  return c2.map((c, i) => c ^ k1[i]!);
}

// ---------------------------------------------------------------------------------------------

/** e(P, Q) for P ∈ G1 (64/65 bytes) and Q ∈ G2 (128/129 bytes), encoded as 384 bytes (part 1, 6.1). */
export function pairing(P: Uint8Array, Q: Uint8Array): Uint8Array {
  const p1 = g1FromBytes(P, 'pairing P');
  const q2 = g2FromBytes(Q, 'pairing Q');
  return f12toBytes(pair(p1, prepareG2(q2)));
}
