// Loads the committed TEST ONLY keys and personalisation profile (test-vectors/keys/) for one suite.
// The generator puts their public parts into static APDUs; the runner signs, seals and MACs with them at run time.

import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../sdk/bytes.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { sm9Provider } from '../sdk/crypto/sm9-suite.js';
import { keyId, type Signer } from '../sdk/crypto/suite.js';
import { masterKeyId } from '../sdk/crypto/symmetric.js';
import { InvalidInputError } from '../sdk/errors.js';
import { CertificateAuthority } from '../sdk/roles/ca.js';
import { TerminalKeys } from '../sdk/roles/terminal-keys.js';
import { cardIdentity, KeyGenerationCentre } from '../sdk/roles/kgc.js';
import { CaTrust, KgcTrust, type CardTrust } from '../sdk/roles/trust.js';
import type { SuiteName } from '../sdk/spec.js';
import type { PersonalizationProfile } from '../host/personalize.js';

/**
 * The repository's TEST ONLY keys: test-vectors/keys/ beside this module (run from source) or beside dist/
 * (compiled, in a checkout). The npm package leaves them out on purpose, so that no installed gate carries keys
 * anyone can forge tickets with: there, the keys come from a directory given by the caller.
 */
const REPOSITORY_KEY_DIRS = [new URL('./keys/', import.meta.url), new URL('../../test-vectors/keys/', import.meta.url)].map((u) => fileURLToPath(u));

/** Environment variable naming the TEST ONLY keys directory when no directory is given. */
export const TEST_KEYS_ENV = 'ETICKET_TEST_KEYS';

/**
 * Where the TEST ONLY keys are: `dir` if given, else $ETICKET_TEST_KEYS, else the repository's test-vectors/keys/
 * (a checkout). A directory without the profiles is an InvalidInputError that says where to get them.
 */
export function testKeysDir(dir?: string): string {
  const chosen = dir ?? process.env[TEST_KEYS_ENV] ?? REPOSITORY_KEY_DIRS.find((d) => existsSync(join(d, 'profile-rsa.json')));
  if (!chosen) {
    throw new InvalidInputError(
      `the vectors need the TEST ONLY keys, which the eticket package does not carry: take test-vectors/keys/ from the eticket repository and give its path (--keys <dir>, or $${TEST_KEYS_ENV})`,
    );
  }
  const abs = resolve(chosen);
  if (!existsSync(join(abs, 'profile-rsa.json')) && !existsSync(join(abs, 'profile-sm9.json'))) {
    throw new InvalidInputError(`${abs} holds no TEST ONLY profile (profile-rsa.json, profile-sm9.json): give the test-vectors/keys/ directory of the eticket repository`);
  }
  return abs;
}

interface ProfileJson {
  name: string;
  testOnly: true;
  suite: SuiteName;
  /** RSA suite: the CA that certifies the keys the card generates. */
  rsaKeySize?: 2048 | 3072;
  ca?: { key: string; certificate: string };
  /** SM9 suite: the KGC master keys the runner extracts card keys with at personalisation. */
  kgc?: string;
  operator: string;
  /** RSA: one PEM file per key; SM9: one file with the identity's signing key. */
  authorities: { name: string; key: string; scopes: string[]; installed: boolean }[];
  /** Keys an authority certifies (A4) for the rotation vectors; never installed on a card. */
  signingKeys?: { name: string; key: string }[];
  /** RSA: `encryption` and `signature` PEM files; SM9: `key`, one file with both identity keys. */
  terminals: { name: string; encryption?: string; signature?: string; key?: string; scopes: string[]; installed: boolean }[];
  /** Gate mode sym: operators' checking master keys; installed ones are diversified onto the card. */
  masterKeys?: { name: string; key: string; operator: string; installed: boolean }[];
}

/** A TEST ONLY authority key of the profile. */
export interface TestAuthority {
  name: string;
  key: Signer;
  keyId: Uint8Array;
  scopes: string[];
  installed: boolean;
}

/** TEST ONLY terminal keys of the profile. */
export interface TestTerminal {
  name: string;
  keys: TerminalKeys;
  scopes: string[];
  installed: boolean;
}

/** An operator's checking master key (gate mode sym); the card holds only its diversification. */
export interface TestMasterKey {
  name: string;
  operator: string;
  key: Uint8Array;
  /** C1 of PUT KEY P1=05 and of sym VERIFY: KDF(MK, "ETKT KEY ID", operator). */
  keyId: Uint8Array;
  installed: boolean;
}

/** Everything a vector needs on the host side; all of it is public and for test cards only. */
export interface TestKeys {
  profileName: string;
  suite: SuiteName;
  operator: string;
  rsaKeySize: 2048 | 3072;
  ca?: CertificateAuthority;
  kgc?: KeyGenerationCentre;
  cardTrust: CardTrust;
  authorities: Map<string, TestAuthority>;
  /** Signing keys the runner certifies at run time with an authority (A4). */
  signingKeys: Map<string, { name: string; key: Signer; keyId: Uint8Array }>;
  terminals: Map<string, TestTerminal>;
  masterKeys: Map<string, TestMasterKey>;
  /** Every distinct RSA key in the folder, for vectors that need many valid public keys (key table full). */
  allKeys: RsaPrivateKey[];
}

function pem(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'utf8');
}

function rsaKey(dir: string, name: string): RsaPrivateKey {
  // The files carry a TEST ONLY banner before the PEM block; OpenSSL skips text outside BEGIN/END.
  const der = createPrivateKey({ key: pem(dir, name), format: 'pem' }).export({ format: 'der', type: 'pkcs8' });
  return RsaPrivateKey.fromPkcs8(new Uint8Array(der));
}

function certificateDer(dir: string, name: string): Uint8Array {
  const body = pem(dir, name).split('-----BEGIN CERTIFICATE-----')[1]?.split('-----END CERTIFICATE-----')[0];
  if (!body) throw new InvalidInputError(`${name} holds no PEM certificate`);
  return new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
}

/** `name: HEX` lines of a non-PEM key file (the banner lines have no colon-separated hex). */
function hexFields(dir: string, name: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const line of pem(dir, name).split('\n')) {
    const m = /^([a-z0-9-]+): ([0-9A-F]+)$/.exec(line.trim());
    if (m) out[m[1]] = fromHex(m[2]);
  }
  return out;
}

function field(f: Record<string, Uint8Array>, k: string, file: string): Uint8Array {
  const v = f[k];
  if (!v) throw new InvalidInputError(`${file} lacks "${k}"`);
  return v;
}

/** The TEST ONLY key generation centre of the SM9 profile (`file` in the keys directory `dir`). */
export function loadKgc(file: string, dir = testKeysDir()): KeyGenerationCentre {
  const f = hexFields(dir, file);
  return KeyGenerationCentre.fromKeys({
    signMasterPrivateKey: field(f, 'sign-master-private', file),
    signMasterPublicKey: field(f, 'sign-master-public', file),
    encMasterPrivateKey: field(f, 'enc-master-private', file),
    encMasterPublicKey: field(f, 'enc-master-public', file),
  });
}

const cache = new Map<string, TestKeys>();

/** The test keys of `suite` (profile `profile-<suite>.json` in the TEST ONLY keys directory: see testKeysDir). */
export function loadTestKeys(suite: SuiteName = 'rsa', keysDir?: string): TestKeys {
  const dir = testKeysDir(keysDir);
  let k = cache.get(`${dir}\0${suite}`);
  if (k) return k;
  let json: ProfileJson;
  try {
    json = JSON.parse(pem(dir, `profile-${suite}.json`)) as ProfileJson;
  } catch (e) {
    throw new InvalidInputError(`no test profile for suite ${suite} in ${dir}`, { cause: e });
  }
  if (json.testOnly !== true) throw new InvalidInputError(`profile ${json.name} is not marked testOnly`);
  const loaded = new Map<string, RsaPrivateKey>();
  const key = (file: string) => {
    let r = loaded.get(file);
    if (!r) loaded.set(file, (r = rsaKey(dir, file)));
    return r;
  };
  const sm9 = json.suite === 'sm9';
  const signer = (file: string): Signer => (sm9 ? sm9Provider.signer(field(hexFields(dir, file), 'signing-key', file)) : key(file));
  const terminalKeys = (t: ProfileJson['terminals'][number]): TerminalKeys => {
    if (sm9) {
      const f = hexFields(dir, t.key!);
      return new TerminalKeys(sm9Provider.decrypter(field(f, 'encryption-key', t.key!)), sm9Provider.signer(field(f, 'signing-key', t.key!)));
    }
    return new TerminalKeys(key(t.encryption!), key(t.signature!));
  };
  let ca: CertificateAuthority | undefined;
  let kgc: KeyGenerationCentre | undefined;
  let cardTrust: CardTrust;
  if (sm9) {
    if (!json.kgc) throw new InvalidInputError(`profile ${json.name} names no KGC`);
    kgc = loadKgc(json.kgc, dir);
    cardTrust = new KgcTrust(kgc.signMasterPublicKey, kgc.encMasterPublicKey, cardIdentity);
  } else {
    if (!json.ca) throw new InvalidInputError(`profile ${json.name} names no CA`);
    ca = CertificateAuthority.load(key(json.ca.key), certificateDer(dir, json.ca.certificate));
    cardTrust = new CaTrust(ca.certificateDer);
  }
  const authorities = new Map(
    json.authorities.map((a) => {
      const s = signer(a.key);
      return [a.name, { name: a.name, key: s, keyId: keyId(s.publicKey), scopes: a.scopes, installed: a.installed }];
    }),
  );
  k = {
    profileName: json.name,
    suite: json.suite,
    operator: json.operator,
    rsaKeySize: json.rsaKeySize ?? 2048,
    ca,
    kgc,
    cardTrust,
    authorities,
    signingKeys: new Map(
      (json.signingKeys ?? []).map((sk) => {
        const s = signer(sk.key);
        return [sk.name, { name: sk.name, key: s, keyId: keyId(s.publicKey) }];
      }),
    ),
    terminals: new Map(json.terminals.map((t) => [t.name, { name: t.name, keys: terminalKeys(t), scopes: t.scopes, installed: t.installed }])),
    masterKeys: new Map(
      (json.masterKeys ?? []).map((m) => {
        const aes = field(hexFields(dir, m.key), 'aes-128', m.key);
        return [m.name, { name: m.name, operator: m.operator, key: aes, keyId: masterKeyId(aes, m.operator), installed: m.installed }];
      }),
    ),
    allKeys: [],
  };
  k.allKeys = [...loaded.values()];
  cache.set(`${dir}\0${suite}`, k);
  return k;
}

/** The profile's authority key by name. */
export function authority(keys: TestKeys, name = 'authority'): TestAuthority {
  const a = keys.authorities.get(name);
  if (!a) throw new InvalidInputError(`test profile has no authority named ${name}`);
  return a;
}

/** The profile's master key by name. */
export function masterKey(keys: TestKeys, name = 'operator'): TestMasterKey {
  const m = keys.masterKeys.get(name);
  if (!m) throw new InvalidInputError(`test profile has no master key named ${name}`);
  return m;
}

/** The profile's terminal keys by name. */
export function terminal(keys: TestKeys, name = 'terminal'): TestTerminal {
  const t = keys.terminals.get(name);
  if (!t) throw new InvalidInputError(`test profile has no terminal named ${name}`);
  return t;
}

/**
 * The profile as personalizeCard takes it: installed keys only, with their scopes; SM9 card keys extracted
 * by the test KGC for the card's serial, sym keys diversified for it.
 */
export function personalizationProfile(keys: TestKeys): PersonalizationProfile {
  return {
    ca: keys.ca,
    kgc: keys.kgc,
    rsaKeySize: keys.rsaKeySize,
    masterKeys: [...keys.masterKeys.values()].filter((m) => m.installed).map((m) => ({ operator: m.operator, key: m.key })),
    authorities: [...keys.authorities.values()].filter((a) => a.installed).map((a) => ({ publicKey: a.key.publicKey, scopes: a.scopes })),
    terminals: [...keys.terminals.values()].filter((t) => t.installed).map((t) => ({ publicKey: t.keys.publicKey, scopes: t.scopes })),
  };
}
