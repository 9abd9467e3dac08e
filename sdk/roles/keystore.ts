// Private keys encrypted at rest, one file per key in a directory: RSA keys as encrypted PKCS#8 PEM
// (readable by openssl), any other suite's private encoding as scrypt + AES-256-GCM JSON.

import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { writeFileDurably } from '../durable-file.js';
import { join } from 'node:path';
import { CryptoError, InvalidInputError } from '../errors.js';
import { RsaPrivateKey } from '../crypto/rsa.js';

const FORMAT = 'eticket-secret/1';
// scrypt N=2^15, r=8: 32 MiB and about 100 ms per key, once per process: cheap for us, dear for a guesser.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

/** A sealed secret as stored on disk (JSON). Every field is needed to open it; the name is authenticated too. */
export interface SealedSecret {
  format: typeof FORMAT;
  /** What the bytes are (e.g. "sm9-sign-private"); bound to the ciphertext as associated data. */
  kind: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  iv: string;
  tag: string;
  ciphertext: string;
}

function requirePassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw new InvalidInputError('an empty passphrase cannot protect a key');
}

/** Encrypt `secret` under `passphrase` (scrypt → AES-256-GCM, `kind` authenticated). */
export function sealSecret(secret: Uint8Array, passphrase: string, kind: string): SealedSecret {
  requirePassphrase(passphrase);
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = scryptSync(passphrase, salt, 32, SCRYPT);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`${FORMAT}:${kind}`));
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final()]);
  return {
    format: FORMAT,
    kind,
    kdf: { name: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64') },
    cipher: 'aes-256-gcm',
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
}

/** Decrypt a sealed secret. Wrong passphrase or a touched file → CryptoError (GCM cannot tell them apart). */
export function openSecret(sealed: SealedSecret, passphrase: string, kind?: string): Uint8Array {
  if (sealed?.format !== FORMAT || sealed.cipher !== 'aes-256-gcm' || sealed.kdf?.name !== 'scrypt') {
    throw new InvalidInputError(`not an ${FORMAT} key file`);
  }
  if (kind !== undefined && sealed.kind !== kind) throw new InvalidInputError(`key file holds a ${sealed.kind}, not a ${kind}`);
  const { N, r, p } = sealed.kdf;
  // Bounds keep a hostile file from asking for gigabytes of scrypt memory.
  if (![N, r, p].every(Number.isInteger) || N < 2 || N > 1 << 20 || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new InvalidInputError('key file has unreasonable scrypt parameters');
  }
  const key = scryptSync(passphrase, Buffer.from(sealed.kdf.salt, 'base64'), 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(`${FORMAT}:${sealed.kind}`));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return new Uint8Array(Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]));
  } catch (e) {
    throw new CryptoError('cannot decrypt the private key: wrong passphrase or damaged key file', { cause: e });
  }
}

/**
 * A directory of encrypted private keys. RSA keys live in `<name>.key` (encrypted PKCS#8 PEM);
 * other encodings in `<name>.secret.json`. Writes are atomic and durable (sdk/durable-file.ts), mode 0600.
 */
export class KeyStore {
  constructor(readonly dir: string) {}

  private write(file: string, text: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileDurably(join(this.dir, file), text, { mode: 0o600 });
  }

  private read(file: string, name: string): string {
    const path = join(this.dir, file);
    if (!existsSync(path)) throw new InvalidInputError(`key store ${this.dir} has no key "${name}" (${file})`);
    return readFileSync(path, 'utf8');
  }

  /**
   * Delete a key's file. The directory entry and the file go; what the file system or a backup kept of its blocks
   * is beyond a program's reach (docs/realname.md says what that means for crypto-shredding).
   */
  remove(name: string): boolean {
    let removed = false;
    for (const file of [`${name}.key`, `${name}.secret.json`]) {
      const path = join(this.dir, file);
      if (existsSync(path)) {
        unlinkSync(path);
        removed = true;
      }
    }
    return removed;
  }

  /** Whether a key by that name is stored. */
  has(name: string): boolean {
    return existsSync(join(this.dir, `${name}.key`)) || existsSync(join(this.dir, `${name}.secret.json`));
  }

  /** Store an RSA key as `<name>.key`, encrypted PKCS#8 PEM. */
  putRsa(name: string, key: RsaPrivateKey, passphrase: string): void {
    requirePassphrase(passphrase);
    this.write(`${name}.key`, key.toEncryptedPem(passphrase));
  }

  /** Throws CryptoError on a wrong passphrase. */
  getRsa(name: string, passphrase: string): RsaPrivateKey {
    return RsaPrivateKey.fromEncryptedPem(this.read(`${name}.key`, name), passphrase);
  }

  /** Any suite's private key encoding (e.g. an SM9 identity private key), with a `kind` label checked on read. */
  putBytes(name: string, kind: string, secret: Uint8Array, passphrase: string): void {
    this.write(`${name}.secret.json`, JSON.stringify(sealSecret(secret, passphrase, kind), null, 2) + '\n');
  }

  /** Open `<name>.secret.json`; CryptoError on a wrong passphrase, InvalidInputError on another `kind`. */
  getBytes(name: string, passphrase: string, kind?: string): Uint8Array {
    let sealed: SealedSecret;
    try {
      sealed = JSON.parse(this.read(`${name}.secret.json`, name)) as SealedSecret;
    } catch (e) {
      if (e instanceof InvalidInputError) throw e;
      throw new InvalidInputError(`key file ${name}.secret.json is not JSON`, { cause: e });
    }
    return openSecret(sealed, passphrase, kind);
  }
}
