// Gate mode `sym` (apdu-spec README §3.5): diversified AES-128 card keys, session keys and the MACs of
// the symmetric tap. Card and gate both call these, so the two sides cannot disagree on a byte.

import { concat, constantTimeEqual, u16, utf8 } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { LIMITS } from '../spec.js';
import { aesEcb, aesEcbDecrypt, cbcDecrypt, cbcEncrypt, cmac } from './aes.js';

export const SYM_KEY_LENGTH = 16;
/** Truncated CMAC length on the air (GlobalPlatform SCP03 uses 8 bytes too). */
export const SYM_MAC_LENGTH = LIMITS.symmetricMacLength;
const ZERO_IV = new Uint8Array(16);

export const SYM_LABEL = {
  CARD_KEY: utf8('ETKT CARD KEY'),
  KEY_ID: utf8('ETKT KEY ID'),
  SESSION_ENC: utf8('ETKT S-ENC'),
  SESSION_MAC: utf8('ETKT S-MAC'),
  PRIVACY_KEY: utf8('ETKT PRIVACY KEY'),
} as const;

export const SYM_CONTEXT = {
  VIEW: utf8('ETKT SYM VIEW 1'),
  COMMAND: utf8('ETKT SYM CMD 1'),
  RECEIPT: utf8('ETKT SYM RCPT 1'),
} as const;

function checkKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== SYM_KEY_LENGTH) throw new InvalidInputError(`${what} must be ${SYM_KEY_LENGTH} bytes`);
}

/**
 * NIST SP 800-108 KDF in counter mode with AES-CMAC as PRF, one 128-bit block:
 * CMAC_K( 01 ‖ label ‖ 00 ‖ context ‖ 0080 ).
 */
export function kdf(key: Uint8Array, label: Uint8Array, context: Uint8Array): Uint8Array {
  checkKey(key, 'KDF key');
  return cmac(key, concat(new Uint8Array([1]), label, new Uint8Array([0]), context, u16(128)));
}

/** The card's checking sub-key for one operator: K_card = KDF(MK, "ETKT CARD KEY", serial ‖ operator). */
export function diversify(masterKey: Uint8Array, serial: Uint8Array, operator: string): Uint8Array {
  if (serial.length !== 8) throw new InvalidInputError('card serial must be 8 bytes');
  if (operator.length < 1 || operator === '*') throw new InvalidInputError('a diversified key belongs to one named operator');
  return kdf(masterKey, SYM_LABEL.CARD_KEY, concat(serial, utf8(operator)));
}

/**
 * Key id of a master key (the card holds only K_card, so this id is what names it in C1): the first
 * 8 bytes of KDF(MK, "ETKT KEY ID", operator). A new master key version gets a new id.
 */
export function masterKeyId(masterKey: Uint8Array, operator: string): Uint8Array {
  return kdf(masterKey, SYM_LABEL.KEY_ID, utf8(operator)).slice(0, 8);
}

/**
 * K_priv of one operator: KDF(MK, "ETKT PRIVACY KEY", operator), installed on every card of the operator with its
 * K_card (PUT KEY P1=05). It hides the serial from keyless readers; extracting it from one card breaks that
 * privacy for all of them (not the security: K_card stays per card).
 */
export function privacyKey(masterKey: Uint8Array, operator: string): Uint8Array {
  if (operator.length < 1 || operator === '*') throw new InvalidInputError('a privacy key belongs to one named operator');
  return kdf(masterKey, SYM_LABEL.PRIVACY_KEY, utf8(operator));
}

/** DF24: AES-128-ECB_{K_priv}(serial ‖ RC), one block; a fresh RC makes every tap's mask different. */
export function maskSerial(kPriv: Uint8Array, serial: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  checkKey(kPriv, 'privacy key');
  if (serial.length !== 8 || cardChallenge.length !== 8) throw new InvalidInputError('serial and card challenge are 8 bytes each');
  return aesEcb(kPriv, concat(serial, cardChallenge));
}

/** The serial behind DF24, or undefined when the block's second half is not the RC sent beside it. */
export function unmaskSerial(kPriv: Uint8Array, masked: Uint8Array, cardChallenge: Uint8Array): Uint8Array | undefined {
  checkKey(kPriv, 'privacy key');
  if (masked.length !== 16 || cardChallenge.length !== 8) return undefined;
  const block = aesEcbDecrypt(kPriv, masked);
  return constantTimeEqual(block.subarray(8), cardChallenge) ? block.slice(0, 8) : undefined;
}

export interface SessionKeys {
  enc: Uint8Array;
  mac: Uint8Array;
}

/** Session keys from both challenges: neither side alone chooses them, and they die with the session. */
export function sessionKeys(cardKey: Uint8Array, terminalChallenge: Uint8Array, cardChallenge: Uint8Array): SessionKeys {
  const context = concat(terminalChallenge, cardChallenge);
  return { enc: kdf(cardKey, SYM_LABEL.SESSION_ENC, context), mac: kdf(cardKey, SYM_LABEL.SESSION_MAC, context) };
}

/** Truncated CMAC over context ‖ chain ‖ parts; `chain` is the previous MAC of the session. */
export function sessionMac(macKey: Uint8Array, context: Uint8Array, chain: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return cmac(macKey, concat(context, chain, ...parts)).slice(0, SYM_MAC_LENGTH);
}

export function checkSessionMac(macKey: Uint8Array, mac: Uint8Array, context: Uint8Array, chain: Uint8Array, ...parts: Uint8Array[]): boolean {
  return mac.length === SYM_MAC_LENGTH && constantTimeEqual(sessionMac(macKey, context, chain, ...parts), mac);
}

/** A fresh key per session makes a fixed IV safe: no key ever encrypts two messages. */
export function sessionEncrypt(encKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return cbcEncrypt(encKey, ZERO_IV, plaintext);
}

export function sessionDecrypt(encKey: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  try {
    return cbcDecrypt(encKey, ZERO_IV, ciphertext);
  } catch (e) {
    throw new CryptoError('session cryptogram does not decrypt', { cause: e });
  }
}
