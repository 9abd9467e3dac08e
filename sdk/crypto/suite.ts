// The crypto suite abstraction: what the protocol needs from a public-key family (RSA or SM9).
// Keys travel as byte encodings (apdu-spec); private keys are objects that never expose their secret.

import { createHash, hash } from 'node:crypto';
import type { SuiteName } from '../spec.js';

/** A private key that signs (key 1, key 5 in pki mode, the card's receipt key). */
export interface Signer {
  readonly suite: SuiteName;
  /** Encoding of the matching public key (RSA: SPKI DER; SM9: identity with master public key). */
  readonly publicKey: Uint8Array;
  /** Signature of `message` in the suite's scheme. */
  sign(message: Uint8Array): Uint8Array;
  /**
   * The same signature computed off the calling thread (RSA: node:crypto's thread pool), for a batch that signs many
   * while its thread goes on; absent where the suite signs in JavaScript (SM9), and signAsync() then signs here.
   */
  signAsync?(message: Uint8Array): Promise<Uint8Array>;
}

/** `signer`'s signature of `message`: off the thread where the signer can (Signer.signAsync), else here. */
export function signAsync(signer: Signer, message: Uint8Array): Promise<Uint8Array> {
  if (signer.signAsync) return signer.signAsync(message);
  try {
    return Promise.resolve(signer.sign(message));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A private key that opens key encapsulations (key 3 on the card, key 5 on a terminal). */
export interface Decrypter {
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  /** Recover the 16-byte key; throws CryptoError when the encapsulation is not valid for this key. */
  decapsulate(encapsulation: Uint8Array): Uint8Array;
}

/** A crypto suite (RSA or SM9): signature verification and key encapsulation with public keys. */
export interface CryptoSuite {
  readonly name: SuiteName;
  readonly id: number;
  /** False for any invalid signature; throws InvalidInputError only for a malformed public key. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** A fresh 16-byte key and its encapsulation to `publicKey`. */
  encapsulate(publicKey: Uint8Array): { key: Uint8Array; encapsulation: Uint8Array };
  /** Throws InvalidInputError when the encoding is not a usable public key of this suite. */
  checkPublicKey(publicKey: Uint8Array): void;
}

/** A suite and the loaders of its private keys from their encodings (card NVM, key stores). */
export interface SuiteProvider {
  suite: CryptoSuite;
  /** Load a signing key from its private encoding. */
  signer(privateKey: Uint8Array): Signer;
  /** Load a decryption key from its private encoding. */
  decrypter(privateKey: Uint8Array): Decrypter;
}

/** Key id: the first 8 bytes of SHA-256 over the public key encoding. */
export function keyId(publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(publicKey).digest().subarray(0, 8));
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  // One part (a face, a view, a command): node's one-shot hash, no Hash object (each one is a native object the GC tracks).
  if (parts.length === 1) return new Uint8Array(hash('sha256', parts[0], 'buffer') as unknown as Buffer);
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
