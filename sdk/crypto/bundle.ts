// A checking terminal's public key (keys 4/5) is a bundle of two: one the card encrypts ticket views
// to, one that verifies the terminal's signed commands. Keeping them apart avoids reusing one RSA key.

import { concat } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { BUNDLE_FIELD } from '../spec.js';
import { TlvMap, tlv } from '../tlv.js';
import type { CryptoSuite } from './suite.js';

export interface TerminalPublicKey {
  encryption: Uint8Array;
  signature: Uint8Array;
}

export function encodeTerminalKey(k: TerminalPublicKey): Uint8Array {
  return concat(tlv(BUNDLE_FIELD.encryption, k.encryption), tlv(BUNDLE_FIELD.signature, k.signature));
}

export function decodeTerminalKey(bytes: Uint8Array): TerminalPublicKey {
  try {
    const m = TlvMap.parse(bytes, { allowed: [BUNDLE_FIELD.encryption, BUNDLE_FIELD.signature] });
    return { encryption: m.require(BUNDLE_FIELD.encryption), signature: m.require(BUNDLE_FIELD.signature) };
  } catch (e) {
    throw new InvalidInputError('not a terminal public key bundle', { cause: e });
  }
}

export function checkTerminalKey(suite: CryptoSuite, bytes: Uint8Array): TerminalPublicKey {
  const k = decodeTerminalKey(bytes);
  suite.checkPublicKey(k.encryption);
  suite.checkPublicKey(k.signature);
  return k;
}
