// One-off maker of the committed TEST ONLY keys in test-vectors/keys/ (its output is committed). It writes
// only the files that are missing: vectors must stay identical run after run, so existing keys are never replaced.

import { existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { hex } from '../../sdk/bytes.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { CertificateAuthority } from '../../sdk/roles/ca.js';
import { KeyGenerationCentre } from '../../sdk/roles/kgc.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const WARNING = [
  'TEST ONLY - eticket conformance vectors (test-vectors/keys). This private key is public:',
  'never install it on a card that leaves the test lab, never trust it in production.',
];
let written = 0;

function write(file: string, body: string): void {
  writeFileSync(`${dir}${file}`, `${WARNING.join('\n')}\n${body}`);
  written++;
}

/** Key files that are not PEM hold `name: HEX` lines after the banner (testkeys.ts reads them). */
function writeHex(file: string, fields: Record<string, Uint8Array>): void {
  if (existsSync(`${dir}${file}`)) return;
  write(file, Object.entries(fields).map(([k, v]) => `${k}: ${hex(v)}\n`).join(''));
}

// ---- RSA suite (profile-rsa.json) ----
const rsaKeys = ['authority', 'authority-other', 'terminal-enc', 'terminal-sig', 'terminal-other-enc', 'terminal-other-sig', 'ca', 'signing-1', 'signing-2'] as const;
for (const k of rsaKeys) {
  const file = `${k}.test-only.key.pem`;
  if (existsSync(`${dir}${file}`)) continue;
  const key = RsaPrivateKey.generate(2048);
  write(file, key.keyObject().export({ format: 'pem', type: 'pkcs8' }) as string);
  if (k === 'ca') {
    // 30 years: the committed CA must outlive every CI run that uses it.
    const ca = CertificateAuthority.create('eticket TEST ONLY CA', 30, key);
    const certPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(ca.certificateDer).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
    writeFileSync(`${dir}ca.test-only.cert.pem`, `${WARNING[0]}\n${certPem}`);
  }
}

// ---- SM9 suite (profile-sm9.json): the KGC master keys, and identity keys it extracted once ----
const KGC_FILE = 'sm9-kgc.test-only.key';
if (!existsSync(`${dir}${KGC_FILE}`)) {
  const k = KeyGenerationCentre.create().keys;
  writeHex(KGC_FILE, {
    'sign-master-private': k.signMasterPrivateKey,
    'sign-master-public': k.signMasterPublicKey,
    'enc-master-private': k.encMasterPrivateKey,
    'enc-master-public': k.encMasterPublicKey,
  });
}
const { loadKgc } = await import('../testkeys.js');
const kgc = loadKgc(KGC_FILE, dir);
// signing-1 / signing-2: keys an authority certifies (A4) for the rotation vectors.
for (const name of ['authority', 'authority-other', 'signing-1', 'signing-2']) writeHex(`sm9-${name}.test-only.key`, { identity: new TextEncoder().encode(`eticket:test:${name}`), 'signing-key': kgc.extractSigningKey(`eticket:test:${name}`) });
for (const name of ['terminal', 'terminal-other', 'terminal-unknown']) {
  const id = `eticket:test:${name}`;
  writeHex(`sm9-${name}.test-only.key`, { identity: new TextEncoder().encode(id), 'encryption-key': kgc.extractEncryptionKey(id), 'signing-key': kgc.extractSigningKey(id) });
}

// ---- gate mode sym (both suites): operators' checking master keys (AES-128) ----
for (const name of ['operator', 'operator-other', 'operator-nobody']) writeHex(`${name}-mk.test-only.key`, { 'aes-128': new Uint8Array(randomBytes(16)) });

console.log(`wrote ${written} key files to ${dir}`);
