// A checking terminal's public key (keys 4/5) is a bundle of two: one the card encrypts ticket views
// to, one that verifies the terminal's signed commands. Keeping them apart avoids reusing one RSA key.

import { concat } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { TlvMap, tlv } from '../tlv.js';
import type { CryptoSuite } from './suite.js';

export interface TerminalPublicKey {
  encryption: Uint8Array;
  signature: Uint8Array;
}

export function encodeTerminalKey(k: TerminalPublicKey): Uint8Array {
  return concat(tlv(0x80, k.encryption), tlv(0x81, k.signature));
}

export function decodeTerminalKey(bytes: Uint8Array): TerminalPublicKey {
  try {
    const m = TlvMap.parse(bytes, { allowed: [0x80, 0x81] });
    return { encryption: m.require(0x80), signature: m.require(0x81) };
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
