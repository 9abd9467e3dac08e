// The envelope is written in one buffer and its MAC checked over the header as received: both must be the bytes
// the field-by-field encoding gives, and any change to a header byte must still fail the integrity check.

import { describe, expect, it } from 'vitest';
import { hex } from '../bytes.js';
import { ENVELOPE_FIELD as E, T } from '../spec.js';
import { template, tlv } from '../tlv.js';
import { cmac, deriveKey } from './aes.js';
import { EnvelopeError, ENVELOPE_VERSION, openWithKey, parseEnvelope, sealWithKey } from './envelope.js';

const KEY = new Uint8Array(16).map((_, i) => i * 3);
const RECIPIENT = new Uint8Array(8).fill(0x11);

/** The envelope as its fields encode one by one: header TLVs, then the MAC over them. */
function reference(env: ReturnType<typeof parseEnvelope>, key: Uint8Array): Uint8Array {
  const body = new Uint8Array([
    ...tlv(E.version, new Uint8Array([ENVELOPE_VERSION])),
    ...tlv(E.suite, new Uint8Array([env.suite])),
    ...tlv(E.recipient, env.recipient),
    ...tlv(E.encapsulation, env.encapsulation),
    ...tlv(E.iv, env.iv),
    ...tlv(E.ciphertext, env.ciphertext),
  ]);
  return template(T.SEALED, body, tlv(E.mac, cmac(deriveKey(key, 0x02), body)));
}

describe('envelope', () => {
  it('sealWithKey writes the bytes of the field-by-field encoding, and opens to the plaintext, at every size', () => {
    for (const [n, kem] of [[0, 16], [15, 256], [300, 256], [5000, 1024]]) {
      const plaintext = new Uint8Array(n).map((_, i) => i & 0xff);
      const sealed = sealWithKey(1, KEY, new Uint8Array(kem).fill(0xe5), RECIPIENT, plaintext);
      const env = parseEnvelope(sealed);
      expect(hex(sealed)).toBe(hex(reference(env, KEY)));
      expect(hex(openWithKey(KEY, env))).toBe(hex(plaintext));
    }
  });

  it('refuses an envelope with any header byte changed (integrity, or format where the change breaks the TLV)', () => {
    const sealed = sealWithKey(1, KEY, new Uint8Array(256).fill(0xe5), RECIPIENT, new Uint8Array(40).fill(7));
    const macAt = sealed.length - 18;
    let integrity = 0;
    for (let i = 0; i < macAt; i += 7) {
      const bad = sealed.slice();
      bad[i] ^= 0x01;
      let e: unknown;
      try {
        openWithKey(KEY, parseEnvelope(bad));
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(EnvelopeError);
      if ((e as EnvelopeError).reason === 'integrity') integrity++;
    }
    expect(integrity).toBeGreaterThan(40);
  });
});
