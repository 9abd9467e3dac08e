// AES-128 building blocks the card side can run on a Java Card 3.0.5 chip: ECB for key derivation,
// CBC with ISO/IEC 9797-1 padding method 2, and AES-CMAC (RFC 4493 / NIST SP 800-38B).

import { createCipheriv, createDecipheriv, randomBytes, type Cipher, type Decipher } from 'node:crypto';
import { CryptoError } from '../errors.js';

const ZERO16 = new Uint8Array(16);

/**
 * update() then final() of an unpadded cipher, as one Uint8Array. On whole blocks final() adds nothing (and throws
 * otherwise), so the update output is returned as it is: node allocates it for this call alone, nothing else holds it.
 */
function run(c: Cipher | Decipher, data: Uint8Array): Uint8Array {
  const out = c.update(data);
  const tail = c.final();
  if (tail.length === 0) return new Uint8Array(out.buffer, out.byteOffset, out.length);
  const all = new Uint8Array(out.length + tail.length);
  all.set(out);
  all.set(tail, out.length);
  return all;
}

/** AES-ECB over whole blocks (no padding). */
export function aesEcb(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  c.setAutoPadding(false);
  return run(c, block);
}

/** AES-ECB decryption over whole blocks (no padding). */
export function aesEcbDecrypt(key: Uint8Array, blocks: Uint8Array): Uint8Array {
  const d = createDecipheriv(`aes-${key.length * 8}-ecb`, key, null);
  d.setAutoPadding(false);
  return run(d, blocks);
}

/** Derive a sub-key: AES_K(constant ‖ 0^15). Separates the encryption and MAC keys made from one K. */
export function deriveKey(key: Uint8Array, constant: number): Uint8Array {
  const block = new Uint8Array(16);
  block[0] = constant;
  return aesEcb(key, block);
}

function shiftLeft(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = ((b[i] << 1) | (i < 15 ? b[i + 1] >>> 7 : 0)) & 0xff;
  if (b[0] & 0x80) out[15] ^= 0x87;
  return out;
}

// Session keys MAC several messages: derive their CMAC subkeys once per key object.
const subkeys = new WeakMap<Uint8Array, { k1: Uint8Array; k2: Uint8Array }>();

export function cmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  let sk = subkeys.get(key);
  if (!sk) {
    const k1 = shiftLeft(aesEcb(key, ZERO16));
    sk = { k1, k2: shiftLeft(k1) };
    subkeys.set(key, sk);
  }
  const { k1, k2 } = sk;
  const n = Math.max(1, Math.ceil(message.length / 16));
  const complete = message.length > 0 && message.length % 16 === 0;
  const m = new Uint8Array(n * 16);
  m.set(message);
  const last = (n - 1) * 16;
  if (complete) {
    for (let i = 0; i < 16; i++) m[last + i] ^= k1[i];
  } else {
    m[message.length] = 0x80;
    for (let i = 0; i < 16; i++) m[last + i] ^= k2[i];
  }
  const c = createCipheriv(`aes-${key.length * 8}-cbc`, key, ZERO16);
  c.setAutoPadding(false);
  const out = c.update(m);
  return new Uint8Array(out.subarray(out.length - 16));
}

/** ISO/IEC 9797-1 method 2: append 0x80, then zeros to a block boundary (always adds at least one byte). */
export function padM2(data: Uint8Array): Uint8Array {
  const out = new Uint8Array((Math.floor(data.length / 16) + 1) * 16);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

export function unpadM2(data: Uint8Array): Uint8Array {
  let i = data.length - 1;
  while (i >= 0 && data[i] === 0) i--;
  if (i < 0 || data[i] !== 0x80 || data.length - i > 16) throw new CryptoError('bad padding');
  return data.subarray(0, i);
}

export function cbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = createCipheriv(`aes-${key.length * 8}-cbc`, key, iv);
  c.setAutoPadding(false);
  return run(c, padM2(plaintext));
}

export function cbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) throw new CryptoError('ciphertext is not whole blocks');
  const d = createDecipheriv(`aes-${key.length * 8}-cbc`, key, iv);
  d.setAutoPadding(false);
  return unpadM2(run(d, ciphertext));
}

export function randomKey(): Uint8Array {
  return new Uint8Array(randomBytes(16));
}

export function random(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}
