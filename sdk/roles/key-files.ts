// The key files an operator hands out, written and read in one place: PEM certificates and public keys, the
// KGC's master public keys, and the key-store names and kinds of a terminal's private keys and master key.

import { readFileSync } from 'node:fs';
import { concat, equal, fromHex } from '../bytes.js';
import { masterKeyId, SYM_KEY_LENGTH } from '../crypto/symmetric.js';
import { sm9Provider } from '../crypto/sm9-suite.js';
import { InvalidInputError } from '../errors.js';
import type { SuiteName } from '../spec.js';
import { TlvMap, tlv } from '../tlv.js';
import { cardIdentity } from './kgc.js';
import type { KeyStore } from './keystore.js';
import type { OperatorMasterKey } from './sym-receipts.js';
import { TerminalKeys } from './terminal-keys.js';
import { CaTrust, KgcTrust, type CardTrust } from './trust.js';

/** PEM labels of the files an operator hands out. */
export const PEM_LABEL = {
  /** X.509 certificate (the CA's, `ca.crt`). */
  certificate: 'CERTIFICATE',
  /** A suite public key: the authority's key 6 (`authority.pub`). */
  publicKey: 'PUBLIC KEY',
  /** A checking terminal's key bundle, keys 4 and 5 (`terminal.pub`). */
  terminalKey: 'ETICKET TERMINAL KEY',
  /** SM9: the KGC's signing and encryption master public keys (`kgc.pub`). */
  kgcPublicKeys: 'ETICKET SM9 MASTER PUBLIC KEYS',
} as const;

/** Names of a terminal's private keys in its key store (`keys/<name>.secret.json`; an older `<name>.key` is read and rewritten). */
export const TERMINAL_KEY_NAMES = { encryption: 'terminal-encryption', signature: 'terminal-signature' } as const;

/** `kind` labels of non-RSA secrets in a key store: checked on read, so one key cannot pass for another. */
export const SECRET_KIND = {
  sm9Signer: 'sm9-signer',
  sm9Decrypter: 'sm9-decrypter',
  checkingMasterKey: 'aes128-checking-master',
} as const;

/** Key-store name of version `version` of the operator's checking master key (gate mode sym). */
export function masterKeyName(version: number): string {
  return `checking-master-v${version}`;
}

/** Which checking master key a configuration expects: its version and key id (hex), as eticket.json names it. */
export interface MasterKeyRef {
  version: number;
  keyId: string;
}

/** DER bytes in a PEM block with `label`, 64 base64 characters a line. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

/** The bytes of the first PEM block with `label` in `text`; `file` names the source in the error. */
export function fromPem(text: string, label: string, file: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!m) throw new InvalidInputError(`${file} holds no ${label}`);
  return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

/** Read a PEM file; a missing or unreadable file is an InvalidInputError that names it. */
export function readPemFile(path: string, label: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  return fromPem(text, label, path);
}

/** The KGC's master public keys as `kgc.pub` holds them (TLV 81 sign, 82 encryption). */
export interface KgcPublicKeys {
  sign: Uint8Array;
  enc: Uint8Array;
}

/** The body of `kgc.pub`. */
export function encodeKgcPublicKeys(k: KgcPublicKeys): Uint8Array {
  return concat(tlv(0x81, k.sign), tlv(0x82, k.enc));
}

/** Decode the body of `kgc.pub`. */
export function decodeKgcPublicKeys(der: Uint8Array): KgcPublicKeys {
  const m = TlvMap.parse(der, { allowed: [0x81, 0x82] });
  return { sign: m.require(0x81), enc: m.require(0x82) };
}

/**
 * How a terminal comes to trust card keys: the CA certificate (RSA suite) or the KGC's master public keys
 * (SM9 suite), read from `file` (`ca.crt` or `kgc.pub`).
 */
export function cardTrustFromFile(suite: SuiteName, file: string): CardTrust {
  if (suite === 'sm9') {
    const k = decodeKgcPublicKeys(readPemFile(file, PEM_LABEL.kgcPublicKeys));
    return new KgcTrust(k.sign, k.enc, cardIdentity);
  }
  return new CaTrust(readPemFile(file, PEM_LABEL.certificate));
}

/** Keys 4/5 of a checking terminal from its key store (RSA PKCS#8 files, or SM9 identity keys). */
export function loadTerminalKeys(store: KeyStore, suite: SuiteName, passphrase: string): TerminalKeys {
  if (suite === 'sm9') {
    return new TerminalKeys(
      sm9Provider.decrypter(store.getBytes(TERMINAL_KEY_NAMES.encryption, passphrase, SECRET_KIND.sm9Decrypter)),
      sm9Provider.signer(store.getBytes(TERMINAL_KEY_NAMES.signature, passphrase, SECRET_KIND.sm9Signer)),
    );
  }
  return new TerminalKeys(store.getRsa(TERMINAL_KEY_NAMES.encryption, passphrase), store.getRsa(TERMINAL_KEY_NAMES.signature, passphrase));
}

/**
 * Copy keys 4/5 from one key store to another, re-encrypted under `toPassphrase` (the office hands a gate
 * its own copy, under the gate's passphrase).
 */
export function copyTerminalKeys(from: KeyStore, to: KeyStore, suite: SuiteName, fromPassphrase: string, toPassphrase: string): void {
  if (suite === 'sm9') {
    to.putBytes(TERMINAL_KEY_NAMES.encryption, SECRET_KIND.sm9Decrypter, from.getBytes(TERMINAL_KEY_NAMES.encryption, fromPassphrase, SECRET_KIND.sm9Decrypter), toPassphrase);
    to.putBytes(TERMINAL_KEY_NAMES.signature, SECRET_KIND.sm9Signer, from.getBytes(TERMINAL_KEY_NAMES.signature, fromPassphrase, SECRET_KIND.sm9Signer), toPassphrase);
    return;
  }
  to.putRsa(TERMINAL_KEY_NAMES.encryption, from.getRsa(TERMINAL_KEY_NAMES.encryption, fromPassphrase), toPassphrase);
  to.putRsa(TERMINAL_KEY_NAMES.signature, from.getRsa(TERMINAL_KEY_NAMES.signature, fromPassphrase), toPassphrase);
}

/**
 * The operator's checking master key named by `ref`, checked against its key id: a file swapped for another
 * operator's key (or another version) is refused before any card sees a MAC made with it.
 */
export function loadMasterKey(store: KeyStore, ref: MasterKeyRef, operator: string, passphrase: string): OperatorMasterKey {
  const name = masterKeyName(ref.version);
  const key = store.getBytes(name, passphrase, SECRET_KIND.checkingMasterKey);
  if (key.length !== SYM_KEY_LENGTH || !equal(masterKeyId(key, operator), fromHex(ref.keyId))) {
    throw new InvalidInputError(`${store.dir}/${name}.secret.json is not the checking master key ${ref.keyId} of operator ${operator}`);
  }
  return { operator, key };
}

/** Store a checking master key under its version's name. */
export function storeMasterKey(store: KeyStore, version: number, key: Uint8Array, passphrase: string): void {
  if (key.length !== SYM_KEY_LENGTH) throw new InvalidInputError(`a checking master key is ${SYM_KEY_LENGTH} bytes, not ${key.length}`);
  store.putBytes(masterKeyName(version), SECRET_KIND.checkingMasterKey, key, passphrase);
}
