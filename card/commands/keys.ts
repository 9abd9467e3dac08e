// The card's keys as handlers use them: operator scopes, terminal key lookup, and the card's own private
// keys loaded once per key (loading a private key from its encoding is costly).

import { equal } from '../../sdk/bytes.js';
import { ANY_OPERATOR } from '../../sdk/commands/put-key.js';
import { decodeTerminalKey, type TerminalPublicKey } from '../../sdk/crypto/bundle.js';
import type { Decrypter, Signer } from '../../sdk/crypto/suite.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { CryptoError } from '../../sdk/errors.js';
import { decodeKeyCertificate } from '../../sdk/roles/key-certificate.js';
import type { KeyChainFailure, RootKey } from '../../sdk/roles/key-chain.js';
import { SUITE, SW, type SuiteName } from '../../sdk/spec.js';
import type { CardKeyPair, CardState, KeyEntry } from '../state.js';
import { refuse } from './context.js';

// By key pair object: the applet moves a pair's bytes when it re-encodes the image (state.ts rebaseState), never
// its object, so a loaded key survives commits.
const loadedSigners = new WeakMap<CardKeyPair, Signer>();
const loadedDecrypters = new WeakMap<CardKeyPair, Decrypter>();

export function scopeAllows(entry: KeyEntry, operator: string): boolean {
  return entry.scopes.includes(ANY_OPERATOR) || entry.scopes.includes(operator);
}

/** The authority keys of PUT KEY P1=01: the roots TF_V and issuer authorisations chain to. */
export function rootKeys(s: CardState): RootKey[] {
  return s.authorityKeys.map((k) => ({ keyId: k.id, publicKey: k.key, scopes: k.scopes }));
}

export function suiteName(s: CardState): SuiteName {
  return s.suite === SUITE.sm9 ? 'sm9' : 'rsa';
}

/** An A4 that decodes strictly (its fields, their order, C1 the key id of D0): a malformed one is 6A80. */
export function wellFormedCertificate(encoded: Uint8Array): boolean {
  try {
    decodeKeyCertificate(encoded);
    return true;
  } catch (e) {
    if (e instanceof CryptoError) return false;
    throw e;
  }
}

/** The status word for a signing key the card cannot accept (apdu-spec README 3.6). */
export function chainRefusal(failure: KeyChainFailure): number {
  switch (failure) {
    case 'format':
      return SW.INCORRECT_DATA;
    case 'unknown-key':
    case 'unknown-root':
    case 'certificate-scope':
      return SW.REFERENCED_DATA_NOT_FOUND;
    default:
      return SW.TICKET_SIGNATURE_INVALID;
  }
}

/** The installed terminal key bundle with this id, or SECURITY_STATUS_NOT_SATISFIED (6982). */
export function terminalKey(s: CardState, id: Uint8Array): KeyEntry {
  return s.terminalKeys.find((k) => equal(k.id, id)) ?? refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'unknown terminal key');
}

/** Each installed terminal key's bundle as decoded, by entry, while the entry holds the same bytes (a view of them). */
const decodedKeys = new WeakMap<KeyEntry, { key: Uint8Array; decoded: TerminalPublicKey }>();

/** decodeTerminalKey of the entry's bundle, decoded once per entry and bytes (its public keys are views of them). */
export function terminalPublicKey(entry: KeyEntry): TerminalPublicKey {
  const hit = decodedKeys.get(entry);
  if (hit && hit.key === entry.key) return hit.decoded;
  const decoded = decodeTerminalKey(entry.key);
  decodedKeys.set(entry, { key: entry.key, decoded });
  return decoded;
}

/** Key 3: opens first ciphertexts (LOAD). Only called on a locked card, which has it. */
export function cardDecrypter(s: CardState): Decrypter {
  const k = s.encKey!;
  let d = loadedDecrypters.get(k);
  if (!d) {
    d = suiteProvider(s.suite).decrypter(k.privateKey);
    loadedDecrypters.set(k, d);
  }
  return d;
}

/** The receipt signing key. Only called on a locked card, which has it. */
export function cardSigner(s: CardState): Signer {
  const k = s.signKey!;
  let sg = loadedSigners.get(k);
  if (!sg) {
    sg = suiteProvider(s.suite).signer(k.privateKey);
    loadedSigners.set(k, sg);
  }
  return sg;
}
