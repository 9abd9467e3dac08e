// Hybrid sealing of the first and second ciphertexts: a KEM (RSA-OAEP or SM9) gives K; K derives an
// AES-CBC key and an AES-CMAC key; encrypt-then-MAC over the whole envelope header and ciphertext.

import { concat, constantTimeEqual } from '../bytes.js';
import { CryptoError, EticketError } from '../errors.js';
import { ENVELOPE_FIELD as E, T } from '../spec.js';
import { TlvMap, template, tlv } from '../tlv.js';
import { cbcDecrypt, cbcEncrypt, cmac, deriveKey, random } from './aes.js';
import type { CryptoSuite, Decrypter } from './suite.js';

export const ENVELOPE_VERSION = 1;
const KEY_ENC = 0x01;
const KEY_MAC = 0x02;

/** Why an envelope was refused; the card maps each reason to one status word. */
export class EnvelopeError extends EticketError {
  constructor(readonly reason: 'format' | 'recipient' | 'integrity', message: string) {
    super(message);
  }
}

function header(suite: number, recipient: Uint8Array, encapsulation: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array) {
  return concat(
    tlv(E.version, new Uint8Array([ENVELOPE_VERSION])),
    tlv(E.suite, new Uint8Array([suite])),
    tlv(E.recipient, recipient),
    tlv(E.encapsulation, encapsulation),
    tlv(E.iv, iv),
    tlv(E.ciphertext, ciphertext),
  );
}

/** Seal `plaintext` to `recipientPublicKey`; `recipient` (card serial or key id) is bound in clear. */
export function seal(suite: CryptoSuite, recipientPublicKey: Uint8Array, recipient: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const { key, encapsulation } = suite.encapsulate(recipientPublicKey);
  return sealWithKey(suite.id, key, encapsulation, recipient, plaintext);
}

export function sealWithKey(suiteId: number, key: Uint8Array, encapsulation: Uint8Array, recipient: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const iv = random(16);
  const ciphertext = cbcEncrypt(deriveKey(key, KEY_ENC), iv, plaintext);
  const body = header(suiteId, recipient, encapsulation, iv, ciphertext);
  return template(T.SEALED, body, tlv(E.mac, cmac(deriveKey(key, KEY_MAC), body)));
}

export interface ParsedEnvelope {
  suite: number;
  recipient: Uint8Array;
  encapsulation: Uint8Array;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  mac: Uint8Array;
}

/** Card-side bound on the ciphertext (what a card's RAM takes); host-to-host envelopes may allow more. */
export const CARD_ENVELOPE_MAX_CIPHERTEXT = 8192;

export function parseEnvelope(encoded: Uint8Array, maxCiphertext = CARD_ENVELOPE_MAX_CIPHERTEXT): ParsedEnvelope {
  let m: TlvMap;
  try {
    const outer = TlvMap.parse(encoded, { allowed: [T.SEALED] });
    const order = [E.version, E.suite, E.recipient, E.encapsulation, E.iv, E.ciphertext, E.mac];
    m = TlvMap.parse(outer.require(T.SEALED), { allowed: order });
    const version = m.bytes(E.version, 1, 1, 'version')[0];
    if (version !== ENVELOPE_VERSION) throw new Error(`envelope version ${version}`);
    if (m.items.map((i) => i.tag).join() !== order.join()) throw new Error('envelope fields out of order');
    return {
      suite: m.bytes(E.suite, 1, 1, 'suite')[0],
      recipient: m.bytes(E.recipient, 8, 8, 'recipient'),
      encapsulation: m.bytes(E.encapsulation, 1, 1024, 'encapsulation'),
      iv: m.bytes(E.iv, 16, 16, 'IV'),
      ciphertext: m.bytes(E.ciphertext, 16, maxCiphertext, 'ciphertext'),
      mac: m.bytes(E.mac, 16, 16, 'MAC'),
    };
  } catch (e) {
    throw new EnvelopeError('format', `malformed envelope: ${(e as Error).message}`);
  }
}

/** Open an envelope addressed to `expectedRecipient` with `decrypter`'s private key. */
export function open(decrypter: Decrypter, suiteId: number, expectedRecipient: Uint8Array, encoded: Uint8Array, maxCiphertext = CARD_ENVELOPE_MAX_CIPHERTEXT): Uint8Array {
  const env = parseEnvelope(encoded, maxCiphertext);
  if (env.suite !== suiteId) throw new EnvelopeError('format', `envelope suite ${env.suite}, expected ${suiteId}`);
  if (!constantTimeEqual(env.recipient, expectedRecipient)) throw new EnvelopeError('recipient', 'envelope is addressed to another recipient');
  let key: Uint8Array;
  try {
    key = decrypter.decapsulate(env.encapsulation);
  } catch {
    throw new EnvelopeError('integrity', 'envelope integrity check failed');
  }
  return openWithKey(key, env);
}

export function openWithKey(key: Uint8Array, env: ParsedEnvelope): Uint8Array {
  const body = header(env.suite, env.recipient, env.encapsulation, env.iv, env.ciphertext);
  if (!constantTimeEqual(cmac(deriveKey(key, KEY_MAC), body), env.mac)) {
    throw new EnvelopeError('integrity', 'envelope integrity check failed');
  }
  try {
    return cbcDecrypt(deriveKey(key, KEY_ENC), env.iv, env.ciphertext);
  } catch (e) {
    if (e instanceof CryptoError) throw new EnvelopeError('integrity', 'envelope integrity check failed');
    throw e;
  }
}
