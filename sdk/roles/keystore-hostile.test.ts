// A key file with hostile KDF parameters costs nothing to refuse: the parameters are checked against the
// allow-list before any scrypt (or, for a legacy PEM, before OpenSSL's PBKDF2) runs. Spies count the calls.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ scrypt: 0, createPrivateKey: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  return {
    ...crypto,
    scryptSync: (...args: Parameters<typeof crypto.scryptSync>) => {
      calls.scrypt++;
      return crypto.scryptSync(...args);
    },
    createPrivateKey: (...args: Parameters<typeof crypto.createPrivateKey>) => {
      calls.createPrivateKey++;
      return crypto.createPrivateKey(...args);
    },
  };
});

const { KeyFileRejectedError, KeyStore, sealSecret } = await import('./keystore.js');
const { generateKeyPairSync } = await import('node:crypto');

const dir = mkdtempSync(join(tmpdir(), 'eticket-keystore-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  calls.scrypt = 0;
  calls.createPrivateKey = 0;
});

describe('hostile key files', () => {
  it('a genuine key file runs scrypt once (the spy sees the real path)', () => {
    const store = new KeyStore(dir);
    store.putBytes('genuine', 'x', new Uint8Array([7]), 'pw');
    calls.scrypt = 0;
    expect(store.getBytes('genuine', 'pw', 'x')).toEqual(new Uint8Array([7]));
    expect(calls.scrypt).toBe(1);
  });

  it('refuses N=2^20, r=32, p=16 (4 GiB of scrypt) with KeyFileRejectedError and no scrypt call', () => {
    const sealed = sealSecret(new Uint8Array([1]), 'pw', 'x');
    calls.scrypt = 0;
    writeFileSync(join(dir, 'hostile.secret.json'), JSON.stringify({ ...sealed, kdf: { ...sealed.kdf, N: 1 << 20, r: 32, p: 16 } }), { mode: 0o600 });
    const store = new KeyStore(dir);
    expect(() => store.getBytes('hostile', 'pw', 'x')).toThrow(KeyFileRejectedError);
    expect(() => store.getBytes('hostile', 'pw', 'x')).toThrow(/scrypt N=1048576, r=32, p=16 is not what eticket writes \(N=32768, r=8, p=1\)/);
    expect(() => store.getRsa('hostile', 'pw')).toThrow(KeyFileRejectedError);
    expect(calls.scrypt).toBe(0);
  });

  it('refuses a legacy PEM asking for 2^31-1 PBKDF2 iterations without handing it to OpenSSL', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    const at = der.indexOf(Buffer.from([0x02, 0x02, 0x08, 0x00]));
    // 2^31-1 iterations: an INTEGER of 4 bytes instead of 2, so every enclosing length grows by 2.
    const patched = Buffer.concat([der.subarray(0, at), Buffer.from([0x02, 0x04, 0x7f, 0xff, 0xff, 0xff]), der.subarray(at + 4)]);
    for (const lengthAt of [2, 6, 19, 21, 34]) {
      // The SEQUENCEs around the parameters: 30 82 LL LL at 0, 30 LL at 4, 17, 19 and 32 (from openssl asn1parse).
      if (lengthAt === 2) patched.writeUInt16BE(patched.readUInt16BE(2) + 2, 2);
      else patched[lengthAt - 1] = patched[lengthAt - 1]! + 2;
    }
    writeFileSync(join(dir, 'slow.key'), `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${patched.toString('base64')}\n-----END ENCRYPTED PRIVATE KEY-----\n`, { mode: 0o600 });
    calls.createPrivateKey = 0;
    expect(() => new KeyStore(dir).getRsa('slow', 'pw')).toThrow(/PBKDF2 with 2147483647 iterations/);
    expect(calls.createPrivateKey).toBe(0);
    expect(calls.scrypt).toBe(0);
  });
});
