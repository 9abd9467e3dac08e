// The RSA suite: RSASSA-PSS-SHA-256 signatures and RSA-OAEP-SHA-256 key encapsulation, on node:crypto.
// Private keys are KeyObjects; they serialise only to PKCS#8 DER (the card's NVM; the key store seals it).

import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  privateDecrypt,
  publicEncrypt,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import { toBuffer } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { SUITE } from '../spec.js';
import { randomKey } from './aes.js';
import type { CryptoSuite, Decrypter, Signer } from './suite.js';

const PSS = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } as const;
const OAEP = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' } as const;
export const RSA_KEY_SIZES = [2048, 3072] as const;
/** RSA modulus sizes the suite supports (2048 or 3072 bits). */
export type RsaKeySize = (typeof RSA_KEY_SIZES)[number];

// Parsing an SPKI costs more than a verify; a terminal sees the same few keys all day.
const publicKeyCache = new Map<string, KeyObject>();

export function rsaPublicKey(spki: Uint8Array): KeyObject {
  const k = Buffer.from(spki).toString('base64');
  let key = publicKeyCache.get(k);
  if (!key) {
    try {
      key = createPublicKey({ key: toBuffer(spki), format: 'der', type: 'spki' });
    } catch (e) {
      throw new InvalidInputError('not an RSA public key (SubjectPublicKeyInfo DER)', { cause: e });
    }
    if (key.asymmetricKeyType !== 'rsa') throw new InvalidInputError(`not an RSA key: ${key.asymmetricKeyType}`);
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (!RSA_KEY_SIZES.includes(bits as RsaKeySize)) throw new InvalidInputError(`RSA key of ${bits} bits; 2048 or 3072 expected`);
    if (publicKeyCache.size > 256) publicKeyCache.clear();
    publicKeyCache.set(k, key);
  }
  return key;
}

export class RsaPrivateKey implements Signer, Decrypter {
  readonly suite = 'rsa' as const;
  readonly publicKey: Uint8Array;

  private constructor(private readonly key: KeyObject) {
    this.publicKey = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  }

  /** A new RSA key pair (node:crypto). */
  static generate(bits: RsaKeySize = 2048): RsaPrivateKey {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
    return new RsaPrivateKey(privateKey);
  }

  /** Load a private key from its PKCS#8 DER encoding. */
  static fromPkcs8(der: Uint8Array): RsaPrivateKey {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: toBuffer(der), format: 'der', type: 'pkcs8' });
    } catch (e) {
      throw new InvalidInputError('not an RSA private key (PKCS#8 DER)', { cause: e });
    }
    if (key.asymmetricKeyType !== 'rsa') throw new InvalidInputError(`not an RSA key: ${key.asymmetricKeyType}`);
    return new RsaPrivateKey(key);
  }

  /**
   * Encrypted PKCS#8 PEM: only to read key files from before the key store's one KDF. OpenSSL runs whatever
   * KDF and iteration count the file names, so callers check it first (keystore.ts checkLegacyRsaPem).
   */
  static fromEncryptedPem(pem: string, passphrase: string): RsaPrivateKey {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem', passphrase });
    } catch (e) {
      throw new CryptoError('cannot decrypt the private key: wrong passphrase or damaged key file', { cause: e });
    }
    return new RsaPrivateKey(key);
  }

  /** Modulus size in bits. */
  get bits(): number {
    return this.key.asymmetricKeyDetails?.modulusLength ?? 0;
  }

  /** Plain PKCS#8 DER: only the card's own NVM image stores a key this way. */
  toPkcs8(): Uint8Array {
    return new Uint8Array(this.key.export({ format: 'der', type: 'pkcs8' }));
  }

  /** node:crypto KeyObject, for node-forge / X.509 interop only. */
  keyObject(): KeyObject {
    return this.key;
  }

  /** RSASSA-PSS-SHA-256 signature of `message`. */
  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(nodeSign('sha256', message, { key: this.key, ...PSS }));
  }

  /** The same signature, computed on node:crypto's thread pool (libuv) while this thread goes on. */
  signAsync(message: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      nodeSign('sha256', message, { key: this.key, ...PSS }, (error, signature) => (error ? reject(new CryptoError('RSA signature failed', { cause: error })) : resolve(new Uint8Array(signature))));
    });
  }

  decapsulate(encapsulation: Uint8Array): Uint8Array {
    let key: Buffer;
    try {
      key = privateDecrypt({ key: this.key, ...OAEP }, encapsulation);
    } catch (e) {
      throw new CryptoError('key unwrap failed', { cause: e });
    }
    if (key.length !== 16) throw new CryptoError('key unwrap failed');
    return new Uint8Array(key);
  }
}

export const rsaSuite: CryptoSuite = {
  name: 'rsa',
  id: SUITE.rsa,
  verify(publicKey, message, signature) {
    const key = rsaPublicKey(publicKey);
    try {
      return nodeVerify('sha256', message, { key, ...PSS }, signature);
    } catch {
      return false;
    }
  },
  encapsulate(publicKey) {
    const key = randomKey();
    const encapsulation = new Uint8Array(publicEncrypt({ key: rsaPublicKey(publicKey), ...OAEP }, key));
    return { key, encapsulation };
  },
  checkPublicKey(publicKey) {
    rsaPublicKey(publicKey);
  },
};
