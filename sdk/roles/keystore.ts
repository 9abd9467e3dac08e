// Private keys encrypted at rest, one file per key in a directory: every secret, RSA keys included, in one
// container (scrypt → AES-256-GCM, JSON) whose parameters are checked against an allow-list before any work.

import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { writeFileDurably } from '../durable-file.js';
import { join } from 'node:path';
import type forge from 'node-forge';
import { nodeForge } from '../forge.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tightenMode } from '../files.js';
import { RsaPrivateKey } from '../crypto/rsa.js';

const FORMAT = 'eticket-secret/1';
// scrypt N=2^15, r=8, p=1: 32 MiB and about 100 ms per key, once per process: cheap for us, dear for a guesser.
const SCRYPT = { N: 1 << 15, r: 8, p: 1 } as const;
/**
 * The only scrypt parameters a key file may ask for: the ones we write. A file is a request to spend
 * 128·N·r·p bytes and as much time; anything else (N=2^20, r=32, p=16 is 4 GiB) is refused before any work.
 * Raising the cost later means adding the new triple here, so old files still open.
 */
export const ACCEPTED_SCRYPT: readonly { N: number; r: number; p: number }[] = [SCRYPT];
const SCRYPT_MAXMEM = 128 * SCRYPT.N * SCRYPT.r * SCRYPT.p + 1024 * 1024;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Larger than any key we store (an RSA-3072 PKCS#8 is ~1.8 KB); bounds the work on a hostile file too. */
const MAX_SECRET_BYTES = 64 * 1024;
/** What an RSA private key is labelled as inside the container (authenticated with the ciphertext). */
export const RSA_PRIVATE_KIND = 'rsa-private-pkcs8';

/**
 * Legacy RSA key files (`<name>.key`, before one KDF for every secret): encrypted PKCS#8 PEM exactly as
 * node:crypto wrote it, PBES2 with PBKDF2-HMAC-SHA256 at 2,048 iterations and AES-256-CBC. Read (after the
 * same kind of check) and rewritten in the container the first time the passphrase opens them.
 */
const LEGACY_PBKDF2_ITERATIONS = 2048;
const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

/** A secret one KeyStore opened, handed to another over the same directory (KeyStore.handOver / adopt). */
export interface OpenedSecret {
  /** SHA-256 (hex) of the key file's content, the kind and the passphrase: what the secret was opened from. */
  memo: string;
  /** The secret's bytes (a copy). */
  secret: Uint8Array;
}

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

/**
 * A key file we will not open: unknown format, KDF parameters outside the allow-list, fields of the wrong
 * size. Raised before any key derivation, so a hostile file costs nothing. (A CryptoError: the CLI reports it
 * like a damaged key file, exit 5.)
 */
export class KeyFileRejectedError extends CryptoError {
  constructor(readonly file: string, reason: string) {
    super(`key file ${file} refused: ${reason}`);
  }
}

function requirePassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw new InvalidInputError('an empty passphrase cannot protect a key');
}

/** Encrypt `secret` under `passphrase` (scrypt → AES-256-GCM, `kind` authenticated). */
export function sealSecret(secret: Uint8Array, passphrase: string, kind: string): SealedSecret {
  requirePassphrase(passphrase);
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const key = scryptSync(passphrase, salt, 32, { ...SCRYPT, maxmem: SCRYPT_MAXMEM });
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

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function field(value: unknown, bytes: number | undefined, name: string, file: string): Buffer {
  if (typeof value !== 'string' || !BASE64.test(value) || value.length > ((MAX_SECRET_BYTES + 2) / 3) * 4 + 4) {
    throw new KeyFileRejectedError(file, `${name} is not base64 of a sensible size`);
  }
  const b = Buffer.from(value, 'base64');
  if (bytes !== undefined && b.length !== bytes) throw new KeyFileRejectedError(file, `${name} has ${b.length} bytes, not ${bytes}`);
  return b;
}

/**
 * Everything about a sealed secret that can be checked without the passphrase, checked before any work:
 * format, cipher, KDF and its parameters against ACCEPTED_SCRYPT, sizes of salt, IV, tag and ciphertext.
 */
export function checkSealed(sealed: unknown, file = 'key file'): SealedSecret & { bytes: { salt: Buffer; iv: Buffer; tag: Buffer; ciphertext: Buffer } } {
  const s = sealed as Partial<SealedSecret> | null;
  if (typeof s !== 'object' || s === null || s.format !== FORMAT) throw new KeyFileRejectedError(file, `not an ${FORMAT} key file`);
  if (s.cipher !== 'aes-256-gcm') throw new KeyFileRejectedError(file, `cipher ${String(s.cipher)} is not aes-256-gcm`);
  if (typeof s.kind !== 'string' || s.kind.length === 0 || s.kind.length > 64) throw new KeyFileRejectedError(file, 'kind missing or too long');
  const kdf = s.kdf as Partial<SealedSecret['kdf']> | undefined;
  if (typeof kdf !== 'object' || kdf === null || kdf.name !== 'scrypt') throw new KeyFileRejectedError(file, 'its KDF is not scrypt');
  const { N, r, p } = kdf;
  if (!ACCEPTED_SCRYPT.some((a) => a.N === N && a.r === r && a.p === p)) {
    const accepted = ACCEPTED_SCRYPT.map((a) => `N=${a.N}, r=${a.r}, p=${a.p}`).join('; ');
    throw new KeyFileRejectedError(file, `scrypt N=${String(N)}, r=${String(r)}, p=${String(p)} is not what eticket writes (${accepted})`);
  }
  const bytes = {
    salt: field(kdf.salt, SALT_BYTES, 'salt', file),
    iv: field(s.iv, IV_BYTES, 'iv', file),
    tag: field(s.tag, TAG_BYTES, 'tag', file),
    ciphertext: field(s.ciphertext, undefined, 'ciphertext', file),
  };
  if (bytes.ciphertext.length > MAX_SECRET_BYTES) throw new KeyFileRejectedError(file, `ciphertext of ${bytes.ciphertext.length} bytes`);
  return { ...(s as SealedSecret), bytes };
}

/**
 * Decrypt a sealed secret. A file outside the allow-list → KeyFileRejectedError before any key derivation;
 * wrong passphrase or a touched file → CryptoError (GCM cannot tell them apart).
 */
export function openSecret(sealed: SealedSecret, passphrase: string, kind?: string, file?: string): Uint8Array {
  const { checked, kdf } = checkedFor(sealed, kind, file);
  return decryptSealed(checked, scryptSync(passphrase, checked.bytes.salt, 32, kdf));
}

/**
 * openSecret with the key derivation on libuv's thread pool: the calling thread goes on (a store booting, a card
 * opening) for the 0.1-0.2 s of scrypt. The same checks, in the same order, with the same errors.
 */
export async function openSecretAsync(sealed: SealedSecret, passphrase: string, kind?: string, file?: string): Promise<Uint8Array> {
  const { checked, kdf } = checkedFor(sealed, kind, file);
  const key = await new Promise<Buffer>((resolve, reject) => scrypt(passphrase, checked.bytes.salt, 32, kdf, (e, k) => (e ? reject(e) : resolve(k))));
  return decryptSealed(checked, key);
}

/** The checks before any key derivation (checkSealed, then the kind), and the scrypt options the file names. */
function checkedFor(sealed: SealedSecret, kind: string | undefined, file: string | undefined): { checked: ReturnType<typeof checkSealed>; kdf: { N: number; r: number; p: number; maxmem: number } } {
  const checked = checkSealed(sealed, file);
  if (kind !== undefined && checked.kind !== kind) throw new InvalidInputError(`key file holds a ${checked.kind}, not a ${kind}`);
  const { N, r, p } = checked.kdf;
  return { checked, kdf: { N, r, p, maxmem: scryptMaxmem(checked.kdf) } };
}

function scryptMaxmem(kdf: { N: number; r: number; p: number }): number {
  return 128 * kdf.N * kdf.r * kdf.p + 1024 * 1024;
}

function decryptSealed(checked: ReturnType<typeof checkSealed>, key: Buffer): Uint8Array {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, checked.bytes.iv);
    decipher.setAAD(Buffer.from(`${FORMAT}:${checked.kind}`));
    decipher.setAuthTag(checked.bytes.tag);
    return new Uint8Array(Buffer.concat([decipher.update(checked.bytes.ciphertext), decipher.final()]));
  } catch (e) {
    throw new CryptoError('cannot decrypt the private key: wrong passphrase or damaged key file', { cause: e });
  }
}

/**
 * Check a legacy encrypted PKCS#8 PEM before OpenSSL sees it: OpenSSL would run whatever KDF and iteration
 * count the file names. Only node:crypto's own output is accepted (PBKDF2-HMAC-SHA256, 2,048, AES-256-CBC).
 */
export function checkLegacyRsaPem(pem: string, file = 'key file'): void {
  const reject = (why: string): never => {
    throw new KeyFileRejectedError(file, `${why} (legacy encrypted PKCS#8: only PBKDF2-HMAC-SHA256 with ${LEGACY_PBKDF2_ITERATIONS} iterations and AES-256-CBC, as eticket wrote it)`);
  };
  let root: forge.asn1.Asn1;
  try {
    const blocks = nodeForge().pem.decode(pem);
    if (blocks.length !== 1 || blocks[0]!.type !== 'ENCRYPTED PRIVATE KEY') return reject('not one ENCRYPTED PRIVATE KEY block');
    if (blocks[0]!.body.length > MAX_SECRET_BYTES) return reject('too large');
    root = nodeForge().asn1.fromDer(nodeForge().util.createBuffer(blocks[0]!.body), true);
  } catch {
    return reject('not DER inside the PEM');
  }
  const seq = (n: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] =>
    n && n.tagClass === nodeForge().asn1.Class.UNIVERSAL && n.type === nodeForge().asn1.Type.SEQUENCE && Array.isArray(n.value) ? (n.value as forge.asn1.Asn1[]) : reject('unexpected structure');
  const oid = (n: forge.asn1.Asn1 | undefined): string =>
    n && n.type === nodeForge().asn1.Type.OID && typeof n.value === 'string' ? nodeForge().asn1.derToOid(n.value) : reject('unexpected structure');
  const [algorithm] = seq(root);
  const [scheme, params] = seq(algorithm);
  if (oid(scheme) !== OID.pbes2) reject('not PBES2');
  const [kdf, enc] = seq(params);
  const [kdfOid, kdfParams] = seq(kdf);
  if (oid(kdfOid) !== OID.pbkdf2) reject('its KDF is not PBKDF2');
  const [, iterations, ...rest] = seq(kdfParams);
  if (!iterations || iterations.type !== nodeForge().asn1.Type.INTEGER || typeof iterations.value !== 'string' || iterations.value.length > 4) reject('bad iteration count');
  const count = [...(iterations!.value as string)].reduce((a, c) => a * 256 + c.charCodeAt(0), 0);
  if (count !== LEGACY_PBKDF2_ITERATIONS) reject(`PBKDF2 with ${count} iterations`);
  const prf = rest.find((n) => n.type === nodeForge().asn1.Type.SEQUENCE);
  if (!prf || oid(seq(prf)[0]) !== OID.hmacWithSHA256) reject('PBKDF2 PRF is not HMAC-SHA256');
  if (oid(seq(enc)[0]) !== OID.aes256Cbc) reject('cipher is not AES-256-CBC');
}

/**
 * A directory of encrypted private keys, `<name>.secret.json` each (RSA keys as PKCS#8 DER of kind
 * rsa-private-pkcs8). Writes are atomic and durable (sdk/durable-file.ts); files are 0600 and the directory 0700, and an
 * existing directory or key file that other users can read is tightened to that (InsecurePermissionsError
 * when it cannot be). Legacy `<name>.key` RSA files are read and rewritten in the container.
 */
export class KeyStore {
  /** Paths this store found open to other users and tightened (the CLI may tell the operator). */
  readonly tightened: string[] = [];

  constructor(readonly dir: string) {}

  private secure(path: string): void {
    if (tightenMode(path)) this.tightened.push(path);
  }

  private write(file: string, text: string): void {
    mkdirSync(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    this.secure(this.dir);
    writeFileDurably(join(this.dir, file), text, { mode: PRIVATE_FILE_MODE });
  }

  private read(file: string, name: string): string {
    const path = join(this.dir, file);
    if (!existsSync(path)) throw new InvalidInputError(`key store ${this.dir} has no key "${name}" (${file})`);
    this.secure(this.dir);
    this.secure(path);
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

  /** Whether `<name>.secret.json` (the scrypt container) is there. */
  private hasContainer(name: string): boolean {
    return existsSync(join(this.dir, `${name}.secret.json`));
  }

  /** Whether a key by that name is stored. */
  has(name: string): boolean {
    return this.hasContainer(name) || existsSync(join(this.dir, `${name}.key`));
  }

  /** Store an RSA key as `<name>.secret.json` (PKCS#8 DER, kind rsa-private-pkcs8, in the scrypt container). */
  putRsa(name: string, key: RsaPrivateKey, passphrase: string): void {
    this.putBytes(name, RSA_PRIVATE_KIND, key.toPkcs8(), passphrase);
  }

  /**
   * Throws CryptoError on a wrong passphrase, KeyFileRejectedError on a file outside the allow-list. A legacy
   * `<name>.key` is rewritten as `<name>.secret.json` once it opened (and removed).
   */
  getRsa(name: string, passphrase: string): RsaPrivateKey {
    if (this.hasContainer(name) || !existsSync(join(this.dir, `${name}.key`))) {
      const key = RsaPrivateKey.fromPkcs8(this.getBytes(name, passphrase, RSA_PRIVATE_KIND));
      // A rewrite that crashed before removing the old file: finish it.
      this.removeLegacy(name);
      return key;
    }
    const file = `${name}.key`;
    const pem = this.read(file, name);
    checkLegacyRsaPem(pem, join(this.dir, file));
    const key = RsaPrivateKey.fromEncryptedPem(pem, passphrase);
    this.upgrade(name, key, passphrase);
    return key;
  }

  /** Any suite's private key encoding (e.g. an SM9 identity private key), with a `kind` label checked on read. */
  putBytes(name: string, kind: string, secret: Uint8Array, passphrase: string): void {
    this.write(`${name}.secret.json`, JSON.stringify(sealSecret(secret, passphrase, kind), null, 2) + '\n');
  }

  /**
   * Secrets this store opened, by file content, kind and passphrase: one command asks for the same key several times
   * (a passphrase check, the issuer authorisation, the signer), and each opening costs a scrypt (0.1-0.7 s). A changed
   * file or another passphrase is opened afresh.
   */
  private readonly opened = new Map<string, Uint8Array>();

  /** Open `<name>.secret.json`; CryptoError on a wrong passphrase, InvalidInputError on another `kind`. */
  getBytes(name: string, passphrase: string, kind?: string): Uint8Array {
    const { memo, hit, sealed, path } = this.lookup(name, passphrase, kind);
    if (hit) return hit.slice();
    const secret = openSecret(sealed(), passphrase, kind, path);
    this.opened.set(memo, secret.slice());
    return secret;
  }

  /**
   * Open `<name>.secret.json` ahead of its use, the key derivation off this thread (openSecretAsync): a later
   * getBytes / getRsa with the same file, kind and passphrase finds it opened. Throws what getBytes would.
   */
  async warm(name: string, passphrase: string, kind?: string): Promise<void> {
    // A legacy `<name>.key` (or no key at all) is left to getRsa / getBytes, which upgrade it or say it is missing.
    if (!this.hasContainer(name)) return;
    const { memo, hit, sealed, path } = this.lookup(name, passphrase, kind);
    if (!hit) this.opened.set(memo, await openSecretAsync(sealed(), passphrase, kind, path));
  }

  /**
   * A secret this store has opened, for another store over the same directory in this process (a worker thread):
   * its memo key (the file's content, kind and passphrase, hashed) and a copy of its bytes; undefined when it is
   * not opened (or not a `<name>.secret.json`). The other store takes it with adopt(), which spares it a scrypt.
   */
  handOver(name: string, passphrase: string, kind?: string): OpenedSecret | undefined {
    if (!this.hasContainer(name)) return undefined;
    const { memo, hit } = this.lookup(name, passphrase, kind);
    return hit ? { memo, secret: hit.slice() } : undefined;
  }

  /**
   * Take a secret another store of this process opened (handOver()): kept only when its memo key is the one this store
   * computes for the same name, kind and passphrase from the file as it reads it now, so a file changed or another
   * passphrase in between is opened afresh (with its own checks) when asked. True when kept.
   */
  adopt(name: string, passphrase: string, kind: string | undefined, handed: OpenedSecret): boolean {
    if (!this.hasContainer(name)) return false;
    const { memo } = this.lookup(name, passphrase, kind);
    if (memo !== handed.memo) return false;
    this.opened.set(memo, handed.secret.slice());
    return true;
  }

  /** The file's memo key, what was opened under it, and its container (parsed only when asked: a miss). */
  private lookup(name: string, passphrase: string, kind?: string): { memo: string; hit?: Uint8Array; sealed: () => SealedSecret; path: string } {
    const file = `${name}.secret.json`;
    const path = join(this.dir, file);
    const text = this.read(file, name);
    const memo = createHash('sha256').update(JSON.stringify([text, kind ?? null, passphrase])).digest('hex');
    const sealed = (): SealedSecret => {
      try {
        return JSON.parse(text) as SealedSecret;
      } catch {
        throw new KeyFileRejectedError(path, 'not JSON');
      }
    };
    return { memo, hit: this.opened.get(memo), sealed, path };
  }

  /** Rewrite a legacy RSA key in the container. Best effort: a read-only store still opens its old files. */
  private upgrade(name: string, key: RsaPrivateKey, passphrase: string): void {
    try {
      this.putRsa(name, key, passphrase);
    } catch {
      return;
    }
    this.removeLegacy(name);
  }

  private removeLegacy(name: string): void {
    try {
      unlinkSync(join(this.dir, `${name}.key`));
    } catch {
      // Not there, or another process removed it first.
    }
  }
}
