// Hybrid sealing of the first and second ciphertexts: a KEM (RSA-OAEP or SM9) gives K; K derives an
// AES-CBC key and an AES-CMAC key; encrypt-then-MAC over the whole envelope header and ciphertext.

import { concat, constantTimeEqual } from '../bytes.js';
import { CryptoError, EticketError } from '../errors.js';
import { protocol, T } from '../spec.js';
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

export function suiteById(id: number): string | undefined {
  return protocol.suites.find((s) => s.id === id)?.name;
}

function header(suite: number, recipient: Uint8Array, encapsulation: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array) {
  return concat(
    tlv(0x80, new Uint8Array([ENVELOPE_VERSION])),
    tlv(0x81, new Uint8Array([suite])),
    tlv(0x82, recipient),
    tlv(0x83, encapsulation),
    tlv(0x84, iv),
    tlv(0x85, ciphertext),
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
  return template(T.SEALED, body, tlv(0x86, cmac(deriveKey(key, KEY_MAC), body)));
}

export interface ParsedEnvelope {
  suite: number;
  recipient: Uint8Array;
  encapsulation: Uint8Array;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  mac: Uint8Array;
}

export function parseEnvelope(encoded: Uint8Array): ParsedEnvelope {
  let m: TlvMap;
  try {
    const outer = TlvMap.parse(encoded, { allowed: [T.SEALED] });
    m = TlvMap.parse(outer.require(T.SEALED), { allowed: [0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86] });
    const version = m.bytes(0x80, 1, 1, 'version')[0];
    if (version !== ENVELOPE_VERSION) throw new Error(`envelope version ${version}`);
    const items = m.items.map((i) => i.tag);
    if (items.join() !== '128,129,130,131,132,133,134') throw new Error('envelope fields out of order');
    return {
      suite: m.bytes(0x81, 1, 1, 'suite')[0],
      recipient: m.bytes(0x82, 8, 8, 'recipient'),
      encapsulation: m.bytes(0x83, 1, 1024, 'encapsulation'),
      iv: m.bytes(0x84, 16, 16, 'IV'),
      ciphertext: m.bytes(0x85, 16, 8192, 'ciphertext'),
      mac: m.bytes(0x86, 16, 16, 'MAC'),
    };
  } catch (e) {
    throw new EnvelopeError('format', `malformed envelope: ${(e as Error).message}`);
  }
}

/** Open an envelope addressed to `expectedRecipient` with `decrypter`'s private key. */
export function open(decrypter: Decrypter, suiteId: number, expectedRecipient: Uint8Array, encoded: Uint8Array): Uint8Array {
  const env = parseEnvelope(encoded);
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
