// Authority key certificates (A4) in both suites: a root key certifies a signing key; decoding is strict (order,
// lengths, key id bound to the key); a changed byte, another root, a time outside the window or an operator
// outside the scope is refused with its reason.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hex } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { keyId, type Signer } from '../crypto/suite.js';
import { T } from '../spec.js';
import { decodeAll, tlv } from '../tlv.js';
import { KeyGenerationCentre } from './kgc.js';
import { decodeKeyCertificate, signKeyCertificate, verifyKeyCertificate } from './key-certificate.js';

const kgc = KeyGenerationCentre.create();
const suites: { suite: 'rsa' | 'sm9'; root: Signer; next: Signer; other: Signer }[] = [
  { suite: 'rsa', root: RsaPrivateKey.generate(2048), next: RsaPrivateKey.generate(2048), other: RsaPrivateKey.generate(2048) },
  { suite: 'sm9', root: kgc.signer('eticket:authority:CR'), next: kgc.signer('eticket:authority:CR:1'), other: kgc.signer('eticket:authority:XX') },
];
const T0 = 1_900_000_000;

describe.each(suites)('key certificate, $suite', ({ root, next, other }) => {
  const cert = signKeyCertificate(root, { publicKey: next.publicKey, scopes: ['CR', 'CR2'], validFrom: T0, validUntil: T0 + 86400 });

  it('encodes A4 { C1, C9+, D0, D2, DC, DD, 9E } in that order and verifies with the root key', () => {
    const outer = decodeAll(cert.encoded);
    expect(outer.map((t) => t.tag)).toEqual([T.KEY_CERTIFICATE]);
    expect(decodeAll(outer[0].value).map((t) => t.tag)).toEqual([0xc1, 0xc9, 0xc9, 0xd0, 0xd2, 0xdc, 0xdd, 0x9e]);
    const v = verifyKeyCertificate(cert.encoded, root, { at: T0 + 10, operator: 'CR2' });
    expect(hex(v.keyId)).toBe(hex(keyId(next.publicKey)));
    expect(hex(v.rootKeyId)).toBe(hex(keyId(root.publicKey)));
    expect(v.scopes).toEqual(['CR', 'CR2']);
  });

  it('refuses another root, a time outside the window, an operator outside the scope', () => {
    expect(() => verifyKeyCertificate(cert.encoded, other)).toThrow(/made by root key/);
    expect(() => verifyKeyCertificate(cert.encoded, root, { at: T0 + 86401 })).toThrow(/is valid from .* not at/);
    expect(() => verifyKeyCertificate(cert.encoded, root, { at: T0 - 1 })).toThrow(CryptoError);
    expect(() => verifyKeyCertificate(cert.encoded, root, { operator: 'XX' })).toThrow(/not certified for operator XX/);
  });

  it('any single changed byte is refused (CryptoError), never accepted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: cert.encoded.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const bad = cert.encoded.slice();
        bad[i] ^= x;
        expect(() => verifyKeyCertificate(bad, root)).toThrow(CryptoError);
      }),
      { numRuns: 60 },
    );
  });

  it('refuses fields out of order, a C1 that is not the key id of D0, and a certificate ending before it starts', () => {
    const items = decodeAll(decodeAll(cert.encoded)[0].value);
    const swapped = [items[1], items[0], ...items.slice(2)];
    expect(() => decodeKeyCertificate(tlv(T.KEY_CERTIFICATE, Buffer.concat(swapped.map((t) => tlv(t.tag, t.value)))))).toThrow(/out of order/);
    expect(() => signKeyCertificate(root, { publicKey: next.publicKey, keyId: new Uint8Array(8), scopes: ['CR'], validFrom: T0, validUntil: T0 + 1 })).toThrow(InvalidInputError);
    expect(() => signKeyCertificate(root, { publicKey: next.publicKey, scopes: ['CR'], validFrom: T0, validUntil: T0 })).toThrow(/end after it starts/);
    expect(() => signKeyCertificate(root, { publicKey: next.publicKey, scopes: [], validFrom: T0, validUntil: T0 + 1 })).toThrow(/at least one operator/);
  });
});
