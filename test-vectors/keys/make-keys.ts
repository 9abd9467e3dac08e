// One-off maker of the committed TEST ONLY keys in test-vectors/keys/ (run once; its output is committed).
// The vector generator never calls it: vectors must stay identical run after run, so keys are fixed files.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { CertificateAuthority } from '../../sdk/roles/ca.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const WARNING = [
  'TEST ONLY - eticket conformance vectors (test-vectors/keys). This private key is public:',
  'never install it on a card that leaves the test lab, never trust it in production.',
];

function writeKey(name: string, key: RsaPrivateKey): void {
  const pem = key.keyObject().export({ format: 'pem', type: 'pkcs8' }) as string;
  writeFileSync(`${dir}${name}.test-only.key.pem`, `${WARNING.join('\n')}\n${pem}`);
}

const keys = ['authority', 'authority-other', 'terminal-enc', 'terminal-sig', 'terminal-other-enc', 'terminal-other-sig', 'ca'] as const;
const made = Object.fromEntries(keys.map((k) => [k, RsaPrivateKey.generate(2048)])) as Record<(typeof keys)[number], RsaPrivateKey>;
for (const k of keys) writeKey(k, made[k]);
// 30 years: the committed CA must outlive every CI run that uses it.
const ca = CertificateAuthority.create('eticket TEST ONLY CA', 30, made.ca);
const certPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(ca.certificateDer).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
writeFileSync(`${dir}ca.test-only.cert.pem`, `${WARNING[0]}\n${certPem}`);
console.log(`wrote ${keys.length} keys and the CA certificate to ${dir}`);
