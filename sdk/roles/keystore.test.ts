// The key store: RSA keys round-trip through encrypted PKCS#8 PEM, other encodings through scrypt +
// AES-256-GCM; a wrong passphrase, a touched file or a mislabelled secret fails with a typed error.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { KeyStore, openSecret, sealSecret } from './keystore.js';

const dir = mkdtempSync(join(tmpdir(), 'eticket-keystore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('KeyStore', () => {
  it('stores an RSA key encrypted and gives it back only with the passphrase', () => {
    const store = new KeyStore(dir);
    const key = RsaPrivateKey.generate(2048);
    store.putRsa('authority', key, 'pw');
    expect(readFileSync(join(dir, 'authority.key'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect(store.getRsa('authority', 'pw').publicKey).toEqual(key.publicKey);
    expect(() => store.getRsa('authority', 'wrong')).toThrow(CryptoError);
    expect(() => store.getRsa('missing', 'pw')).toThrow(InvalidInputError);
  });

  it('stores any private encoding (e.g. SM9) with its kind authenticated', () => {
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

  it('refuses empty passphrases and hostile scrypt parameters', () => {
    expect(() => sealSecret(new Uint8Array(1), '', 'x')).toThrow(InvalidInputError);
    const sealed = sealSecret(new Uint8Array(1), 'pw', 'x');
    expect(() => openSecret({ ...sealed, kdf: { ...sealed.kdf, N: 1 << 30 } }, 'pw')).toThrow(/unreasonable/);
  });
});
