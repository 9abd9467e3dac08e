// The key store: every secret (RSA keys included) in one scrypt + AES-256-GCM container, owner-only modes,
// legacy RSA PEM files read and rewritten; a wrong passphrase, a touched file or a mislabelled secret fails typed.

import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { KeyFileRejectedError, KeyStore, openSecret, RSA_PRIVATE_KIND, sealSecret } from './keystore.js';

const root = mkdtempSync(join(tmpdir(), 'eticket-keystore-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `store-${n++}`);
const mode = (path: string): number => statSync(path).mode & 0o777;

/** An RSA key file as eticket wrote it before one KDF for every secret: PBKDF2 (2,048) encrypted PKCS#8 PEM. */
function legacyPem(passphrase: string): { pem: string; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    pem: privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase }) as string,
    spki: publicKey.export({ format: 'der', type: 'spki' }) as Buffer,
  };
}

describe('KeyStore', () => {
  it('a key opened once is given again from memory only for the same file, kind and passphrase', () => {
    const dir = freshDir();
    const store = new KeyStore(dir);
    store.putBytes('k', 'test-kind', new Uint8Array([1, 2, 3]), 'pw');
    expect(store.getBytes('k', 'pw', 'test-kind')).toEqual(new Uint8Array([1, 2, 3]));
    // What a caller does to the bytes it got does not change what the next caller gets.
    store.getBytes('k', 'pw', 'test-kind').fill(0);
    expect(store.getBytes('k', 'pw', 'test-kind')).toEqual(new Uint8Array([1, 2, 3]));
    expect(() => store.getBytes('k', 'wrong', 'test-kind')).toThrow(CryptoError);
    expect(() => store.getBytes('k', 'pw', 'other-kind')).toThrow(InvalidInputError);
    // The file replaced (a new secret, or the same under another passphrase): opened afresh.
    store.putBytes('k', 'test-kind', new Uint8Array([4, 5]), 'pw2');
    expect(() => store.getBytes('k', 'pw', 'test-kind')).toThrow(CryptoError);
    expect(store.getBytes('k', 'pw2', 'test-kind')).toEqual(new Uint8Array([4, 5]));
  });

  it('warm opens a key off the thread and gives getBytes the same bytes; a wrong passphrase or kind throws what getBytes would; a missing key is left to getBytes', async () => {
    const dir = freshDir();
    const store = new KeyStore(dir);
    store.putBytes('w', 'test-kind', new Uint8Array([7, 8, 9]), 'pw');
    await expect(store.warm('w', 'wrong', 'test-kind')).rejects.toThrow(CryptoError);
    await expect(store.warm('w', 'pw', 'other-kind')).rejects.toThrow(InvalidInputError);
    await store.warm('w', 'pw', 'test-kind');
    expect(store.getBytes('w', 'pw', 'test-kind')).toEqual(new Uint8Array([7, 8, 9]));
    // Another passphrase is not answered from what the warm-up opened.
    expect(() => store.getBytes('w', 'wrong', 'test-kind')).toThrow(CryptoError);
    // A missing key: left to getBytes, which names it.
    await store.warm('absent', 'pw');
    expect(() => store.getBytes('absent', 'pw')).toThrow(InvalidInputError);
  });

  it('a key handed over to another store of the same directory is kept only for the same file, kind and passphrase, and then given without opening the file', () => {
    const dir = freshDir();
    const opener = new KeyStore(dir);
    opener.putBytes('h', 'test-kind', new Uint8Array([1, 2, 3]), 'pw');
    // Nothing opened yet: nothing to hand over; a store without the file neither hands over nor adopts.
    expect(opener.handOver('h', 'pw', 'test-kind')).toBeUndefined();
    expect(opener.getBytes('h', 'pw', 'test-kind')).toEqual(new Uint8Array([1, 2, 3]));
    const handed = opener.handOver('h', 'pw', 'test-kind')!;
    expect(handed.secret).toEqual(new Uint8Array([1, 2, 3]));
    expect(new KeyStore(freshDir()).adopt('h', 'pw', 'test-kind', handed)).toBe(false);
    // Another passphrase or another kind: not kept (opening the file then says what is wrong).
    const other = new KeyStore(dir);
    expect(other.adopt('h', 'wrong', 'test-kind', handed)).toBe(false);
    expect(() => other.getBytes('h', 'wrong', 'test-kind')).toThrow(CryptoError);
    expect(other.adopt('h', 'pw', 'other-kind', handed)).toBe(false);
    // The same: kept, and answered from memory. Bytes no scrypt of this file gives show that the file was not opened.
    const taker = new KeyStore(dir);
    expect(taker.adopt('h', 'pw', 'test-kind', { memo: handed.memo, secret: new Uint8Array([9, 9]) })).toBe(true);
    expect(taker.getBytes('h', 'pw', 'test-kind')).toEqual(new Uint8Array([9, 9]));
    // The file replaced after the handover (another secret, same passphrase): the handed key is not kept.
    const later = new KeyStore(dir);
    opener.putBytes('h', 'test-kind', new Uint8Array([4, 5]), 'pw');
    expect(later.adopt('h', 'pw', 'test-kind', handed)).toBe(false);
    expect(later.getBytes('h', 'pw', 'test-kind')).toEqual(new Uint8Array([4, 5]));
  });

  it('stores an RSA key in the scrypt container (0600 in a 0700 directory) and gives it back only with the passphrase', () => {
    const dir = freshDir();
    const store = new KeyStore(dir);
    const key = RsaPrivateKey.generate(2048);
    store.putRsa('authority', key, 'pw');
    const file = join(dir, 'authority.secret.json');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ format: 'eticket-secret/1', kind: RSA_PRIVATE_KIND, kdf: { name: 'scrypt', N: 32768, r: 8, p: 1 }, cipher: 'aes-256-gcm' });
    expect(existsSync(join(dir, 'authority.key'))).toBe(false);
    expect(mode(file)).toBe(0o600);
    expect(mode(dir)).toBe(0o700);
    expect(store.getRsa('authority', 'pw').publicKey).toEqual(key.publicKey);
    expect(() => store.getRsa('authority', 'wrong')).toThrow(CryptoError);
    expect(() => store.getRsa('missing', 'pw')).toThrow(InvalidInputError);
    // The kind is authenticated: an RSA key does not open as something else, nor the reverse.
    expect(() => store.getBytes('authority', 'pw', 'sm9-sign-private')).toThrow(/holds a rsa-private-pkcs8/);
  });

  it('stores any private encoding (e.g. SM9) with its kind authenticated', () => {
    const dir = freshDir();
    const store = new KeyStore(dir);
    const secret = new Uint8Array([1, 2, 3, 4, 5]);
    store.putBytes('kgc', 'sm9-master-private', secret, 'pw');
    expect(store.has('kgc')).toBe(true);
    expect(store.getBytes('kgc', 'pw', 'sm9-master-private')).toEqual(secret);
    expect(() => store.getBytes('kgc', 'wrong')).toThrow(CryptoError);
    expect(() => store.getBytes('kgc', 'pw', 'rsa')).toThrow(InvalidInputError);
    const file = join(dir, 'kgc.secret.json');
    const sealed = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...sealed, kind: 'other' }));
    expect(() => store.getBytes('kgc', 'pw')).toThrow(CryptoError);
  });

  it('opens a legacy PBKDF2 RSA key file, rewrites it in the container and removes it; a wrong passphrase changes nothing', () => {
    const dir = freshDir();
    mkdirSync(dir, { mode: 0o700 });
    const { pem, spki } = legacyPem('pw');
    writeFileSync(join(dir, 'ca.key'), pem, { mode: 0o600 });
    const store = new KeyStore(dir);
    expect(store.has('ca')).toBe(true);
    expect(() => store.getRsa('ca', 'wrong')).toThrow(CryptoError);
    expect(readFileSync(join(dir, 'ca.key'), 'utf8')).toBe(pem);
    expect(existsSync(join(dir, 'ca.secret.json'))).toBe(false);

    expect(Buffer.from(store.getRsa('ca', 'pw').publicKey)).toEqual(spki);
    expect(existsSync(join(dir, 'ca.key'))).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, 'ca.secret.json'), 'utf8'))).toMatchObject({ kind: RSA_PRIVATE_KIND, kdf: { name: 'scrypt' } });
    expect(Buffer.from(new KeyStore(dir).getRsa('ca', 'pw').publicKey)).toEqual(spki);
  });

  it('refuses legacy PEM files eticket never wrote (other iteration count, other KDF) before OpenSSL decrypts them', () => {
    const dir = freshDir();
    mkdirSync(dir, { mode: 0o700 });
    const { pem } = legacyPem('pw');
    // The iteration count is the INTEGER 02 02 08 00 in the PBKDF2 parameters; 0x7FFF keeps the DER valid.
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    const at = der.indexOf(Buffer.from([0x02, 0x02, 0x08, 0x00]));
    expect(at).toBeGreaterThan(0);
    der[at + 2] = 0x7f;
    der[at + 3] = 0xff;
    const patched = `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ENCRYPTED PRIVATE KEY-----\n`;
    writeFileSync(join(dir, 'a.key'), patched, { mode: 0o600 });
    const store = new KeyStore(dir);
    expect(() => store.getRsa('a', 'pw')).toThrow(KeyFileRejectedError);
    expect(() => store.getRsa('a', 'pw')).toThrow(/PBKDF2 with 32767 iterations/);
    writeFileSync(join(dir, 'b.key'), '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n', { mode: 0o600 });
    expect(() => store.getRsa('b', 'pw')).toThrow(KeyFileRejectedError);
    writeFileSync(join(dir, 'c.key'), 'not a pem', { mode: 0o600 });
    expect(() => store.getRsa('c', 'pw')).toThrow(KeyFileRejectedError);
  });

  it('tightens a keys/ directory and key files other users can read (0755 → 0700, 0644 → 0600)', () => {
    const dir = freshDir();
    const store = new KeyStore(dir);
    store.putBytes('k', 'x', new Uint8Array([9]), 'pw');
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'k.secret.json'), 0o644);
    const reopened = new KeyStore(dir);
    expect(reopened.getBytes('k', 'pw', 'x')).toEqual(new Uint8Array([9]));
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, 'k.secret.json'))).toBe(0o600);
    expect(reopened.tightened).toEqual([dir, join(dir, 'k.secret.json')]);
    // Writing into an existing loose directory tightens it too.
    chmodSync(dir, 0o775);
    reopened.putBytes('k2', 'x', new Uint8Array([1]), 'pw');
    expect(mode(dir)).toBe(0o700);
  });

  it('refuses empty passphrases, and key files outside the allow-list with a typed error', () => {
    expect(() => sealSecret(new Uint8Array(1), '', 'x')).toThrow(InvalidInputError);
    const sealed = sealSecret(new Uint8Array(1), 'pw', 'x');
    expect(openSecret(sealed, 'pw', 'x')).toEqual(new Uint8Array(1));
    for (const bad of [
      { ...sealed, kdf: { ...sealed.kdf, N: 1 << 30 } },
      { ...sealed, kdf: { ...sealed.kdf, N: 1 << 14 } }, // cheaper than ours is refused too: a downgrade
      { ...sealed, kdf: { ...sealed.kdf, r: 9 } },
      { ...sealed, kdf: { ...sealed.kdf, p: 2 } },
      { ...sealed, kdf: { ...sealed.kdf, N: '32768' } },
      { ...sealed, kdf: { ...sealed.kdf, name: 'pbkdf2' } },
      { ...sealed, cipher: 'aes-256-cbc' },
      { ...sealed, iv: Buffer.alloc(16).toString('base64') },
      { ...sealed, kdf: { ...sealed.kdf, salt: 'not base64!' } },
      { ...sealed, ciphertext: Buffer.alloc(100_000).toString('base64') },
      { ...sealed, format: 'other' },
      null,
    ]) {
      expect(() => openSecret(bad as typeof sealed, 'pw'), JSON.stringify(bad)?.slice(0, 80)).toThrow(KeyFileRejectedError);
    }
  });
});
