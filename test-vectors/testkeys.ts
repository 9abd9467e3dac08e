// Loads the committed TEST ONLY keys and personalisation profile (test-vectors/keys/) for one suite.
// The generator puts their public parts into static APDUs; the runner signs and seals with them at run time.

import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { keyId } from '../sdk/crypto/suite.js';
import { InvalidInputError } from '../sdk/errors.js';
import { CertificateAuthority } from '../sdk/roles/ca.js';
import { TerminalKeys } from '../sdk/roles/terminal-keys.js';
import { CaTrust, type CardTrust } from '../sdk/roles/trust.js';
import type { SuiteName } from '../sdk/spec.js';
import type { PersonalizationProfile } from '../host/personalize.js';

export const KEYS_DIR = fileURLToPath(new URL('./keys/', import.meta.url));

interface ProfileJson {
  name: string;
  testOnly: true;
  suite: SuiteName;
  rsaKeySize: 2048 | 3072;
  ca: { key: string; certificate: string };
  operator: string;
  authorities: { name: string; key: string; scopes: string[]; installed: boolean }[];
  terminals: { name: string; encryption: string; signature: string; scopes: string[]; installed: boolean }[];
}

export interface TestAuthority {
  name: string;
  key: RsaPrivateKey;
  keyId: Uint8Array;
  scopes: string[];
  installed: boolean;
}

export interface TestTerminal {
  name: string;
  keys: TerminalKeys;
  scopes: string[];
  installed: boolean;
}

/** Everything a vector needs on the host side; all of it is public and for test cards only. */
export interface TestKeys {
  profileName: string;
  suite: SuiteName;
  operator: string;
  rsaKeySize: 2048 | 3072;
  ca: CertificateAuthority;
  cardTrust: CardTrust;
  authorities: Map<string, TestAuthority>;
  terminals: Map<string, TestTerminal>;
  /** Every distinct RSA key in the folder, for vectors that need many valid public keys (key table full). */
  allKeys: RsaPrivateKey[];
}

function pem(name: string): string {
  return readFileSync(`${KEYS_DIR}${name}`, 'utf8');
}

function rsaKey(name: string): RsaPrivateKey {
  // The files carry a TEST ONLY banner before the PEM block; OpenSSL skips text outside BEGIN/END.
  const der = createPrivateKey({ key: pem(name), format: 'pem' }).export({ format: 'der', type: 'pkcs8' });
  return RsaPrivateKey.fromPkcs8(new Uint8Array(der));
}

function certificateDer(name: string): Uint8Array {
  const body = pem(name).split('-----BEGIN CERTIFICATE-----')[1]?.split('-----END CERTIFICATE-----')[0];
  if (!body) throw new InvalidInputError(`${name} holds no PEM certificate`);
  return new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
}

const cache = new Map<string, TestKeys>();

/** The test keys of `suite` (profile `keys/profile-<suite>.json`). */
export function loadTestKeys(suite: SuiteName = 'rsa'): TestKeys {
  let k = cache.get(suite);
  if (k) return k;
  let json: ProfileJson;
  try {
    json = JSON.parse(pem(`profile-${suite}.json`)) as ProfileJson;
  } catch (e) {
    throw new InvalidInputError(`no test profile for suite ${suite} in ${KEYS_DIR}`, { cause: e });
  }
  if (json.testOnly !== true) throw new InvalidInputError(`profile ${json.name} is not marked testOnly`);
  const loaded = new Map<string, RsaPrivateKey>();
  const key = (file: string) => {
    let r = loaded.get(file);
    if (!r) loaded.set(file, (r = rsaKey(file)));
    return r;
  };
  const ca = CertificateAuthority.load(key(json.ca.key), certificateDer(json.ca.certificate));
  k = {
    profileName: json.name,
    suite: json.suite,
    operator: json.operator,
    rsaKeySize: json.rsaKeySize,
    ca,
    cardTrust: new CaTrust(ca.certificateDer),
    authorities: new Map(json.authorities.map((a) => [a.name, { name: a.name, key: key(a.key), keyId: keyId(key(a.key).publicKey), scopes: a.scopes, installed: a.installed }])),
    terminals: new Map(
      json.terminals.map((t) => [t.name, { name: t.name, keys: new TerminalKeys(key(t.encryption), key(t.signature)), scopes: t.scopes, installed: t.installed }]),
    ),
    allKeys: [],
  };
  k.allKeys = [...loaded.values()];
  cache.set(suite, k);
  return k;
}

export function authority(keys: TestKeys, name = 'authority'): TestAuthority {
  const a = keys.authorities.get(name);
  if (!a) throw new InvalidInputError(`test profile has no authority named ${name}`);
  return a;
}

export function terminal(keys: TestKeys, name = 'terminal'): TestTerminal {
  const t = keys.terminals.get(name);
  if (!t) throw new InvalidInputError(`test profile has no terminal named ${name}`);
  return t;
}

/** The profile as personalizeCard takes it: installed keys only, with their scopes. */
export function personalizationProfile(keys: TestKeys): PersonalizationProfile {
  return {
    ca: keys.ca,
    rsaKeySize: keys.rsaKeySize,
    authorities: [...keys.authorities.values()].filter((a) => a.installed).map((a) => ({ publicKey: a.key.publicKey, scopes: a.scopes })),
    terminals: [...keys.terminals.values()].filter((t) => t.installed).map((t) => ({ publicKey: t.keys.publicKey, scopes: t.scopes })),
  };
}
