// Hybrid sealing of the first and second ciphertexts: a KEM (RSA-OAEP or SM9) gives K; K derives an
// AES-CBC key and an AES-CMAC key; encrypt-then-MAC over the whole envelope header and ciphertext.

import { concat, constantTimeEqual } from '../bytes.js';
import { CryptoError, EticketError } from '../errors.js';
import { ENVELOPE_FIELD as E, T } from '../spec.js';
import { putHeader, putTlv, TlvMap, tlv, tlvSize } from '../tlv.js';
import { cbcDecrypt, cbcEncrypt, cmac, deriveKey, random } from './aes.js';
import type { CryptoSuite, Decrypter } from './suite.js';

export const ENVELOPE_VERSION = 1;
const KEY_ENC = 0x01;
const KEY_MAC = 0x02;
/** AES-CMAC, untruncated. */
const MAC_LENGTH = 16;

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
  // The header written in place in the one output buffer (sized first), the MAC over it, then the MAC's TLV: the
  // bytes of template(SEALED, header(...), tlv(mac, ...)) without the intermediate copies of encapsulation and ciphertext.
  const bodyLength = tlvSize(E.version, 1) + tlvSize(E.suite, 1) + tlvSize(E.recipient, recipient.length) + tlvSize(E.encapsulation, encapsulation.length) + tlvSize(E.iv, iv.length) + tlvSize(E.ciphertext, ciphertext.length);
  const contentLength = bodyLength + tlvSize(E.mac, MAC_LENGTH);
  const out = new Uint8Array(tlvSize(T.SEALED, contentLength));
  const start = putHeader(out, 0, T.SEALED, contentLength);
  let o = putHeader(out, start, E.version, 1);
  out[o++] = ENVELOPE_VERSION;
  o = putHeader(out, o, E.suite, 1);
  out[o++] = suiteId;
  o = putTlv(out, o, E.recipient, recipient);
  o = putTlv(out, o, E.encapsulation, encapsulation);
  o = putTlv(out, o, E.iv, iv);
  o = putTlv(out, o, E.ciphertext, ciphertext);
  const mac = cmac(deriveKey(key, KEY_MAC), out.subarray(start, o));
  o = putTlv(out, o, E.mac, mac);
  if (o !== out.length || mac.length !== MAC_LENGTH) throw new RangeError(`envelope encoded to ${o} bytes, not ${out.length}`);
  return out;
}

export interface ParsedEnvelope {
  suite: number;
  recipient: Uint8Array;
  encapsulation: Uint8Array;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  mac: Uint8Array;
  /**
   * The header as received (every field before the MAC, a view into the envelope): what the MAC covers. Strict
   * decoding (minimal lengths, fixed order, nothing else) makes it the bytes header() would encode from the fields.
   */
  body?: Uint8Array;
}

/** Card-side bound on the ciphertext (what a card's RAM takes); host-to-host envelopes may allow more. */
export const CARD_ENVELOPE_MAX_CIPHERTEXT = 8192;

export function parseEnvelope(encoded: Uint8Array, maxCiphertext = CARD_ENVELOPE_MAX_CIPHERTEXT): ParsedEnvelope {
  let m: TlvMap;
  try {
    const outer = TlvMap.parse(encoded, { allowed: [T.SEALED] });
    const order = [E.version, E.suite, E.recipient, E.encapsulation, E.iv, E.ciphertext, E.mac];
    const content = outer.require(T.SEALED);
    m = TlvMap.parse(content, { allowed: order });
    const version = m.bytes(E.version, 1, 1, 'version')[0];
    if (version !== ENVELOPE_VERSION) throw new Error(`envelope version ${version}`);
    // Every field once (TlvMap refuses a duplicate), in this order: compared tag by tag, no strings built.
    if (m.items.length !== order.length || m.items.some((item, i) => item.tag !== order[i])) throw new Error('envelope fields out of order');
    return {
      suite: m.bytes(E.suite, 1, 1, 'suite')[0],
      recipient: m.bytes(E.recipient, 8, 8, 'recipient'),
      encapsulation: m.bytes(E.encapsulation, 1, 1024, 'encapsulation'),
      iv: m.bytes(E.iv, 16, 16, 'IV'),
      ciphertext: m.bytes(E.ciphertext, 16, maxCiphertext, 'ciphertext'),
      mac: m.bytes(E.mac, 16, 16, 'MAC'),
      body: content.subarray(0, content.length - tlvSize(E.mac, MAC_LENGTH)),
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
  const body = env.body ?? header(env.suite, env.recipient, env.encapsulation, env.iv, env.ciphertext);
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
