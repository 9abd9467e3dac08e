// The signing-key chain of protocol version 2 (apdu-spec README 3.6) in both suites: a root key, or a key it
// certified for the operator and the ticket's time, never retired for the verifier; plus the issuer authorisation
// and the masked serial codecs that ride on the same keys.

import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex } from '../bytes.js';
import { decodeIssuerAuthorization, encodeIssuerAuthorization, issuerAuthorizationMessage } from '../commands/external-authenticate.js';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { keyId, type Signer } from '../crypto/suite.js';
import { getSuite } from '../crypto/suites.js';
import { maskSerial, privacyKey, unmaskSerial } from '../crypto/symmetric.js';
import { T, type SuiteName } from '../spec.js';
import { TlvError, tlv } from '../tlv.js';
import { AuthenticationServer } from './authority.js';
import { decodeKeyCertificate, keyCertificateBody, signKeyCertificate } from './key-certificate.js';
import { resolveSigningKey, type RootKey } from './key-chain.js';
import { cardIdentity, KeyGenerationCentre } from './kgc.js';
import { CaTrust, KgcTrust } from './trust.js';
import { CertificateAuthority } from './ca.js';

const T0 = 1_800_000_000;

function keysFor(suite: SuiteName): { root: Signer; other: Signer; signing: Signer } {
  if (suite === 'rsa') return { root: RsaPrivateKey.generate(2048), other: RsaPrivateKey.generate(2048), signing: RsaPrivateKey.generate(2048) };
  const kgc = KeyGenerationCentre.create();
  return { root: kgc.signer('eticket:authority:CR'), other: kgc.signer('eticket:authority:XX'), signing: kgc.signer('eticket:authority:CR:1') };
}

describe.each(['rsa', 'sm9'] as const)('signing-key chain (%s)', (suite) => {
  const { root, other, signing } = keysFor(suite);
  const roots: RootKey[] = [{ keyId: keyId(root.publicKey), publicKey: root.publicKey, scopes: ['CR'] }];
  const cert = signKeyCertificate(root, { publicKey: signing.publicKey, scopes: ['CR'], validFrom: T0, validUntil: T0 + 86400 }).encoded;
  const at = { operator: 'CR', at: T0 + 100, now: T0 + 50 };

  it('accepts a root key directly and a certified key through its certificate, giving the key that must verify', () => {
    const direct = resolveSigningKey(suite, keyId(root.publicKey), undefined, roots, at);
    expect(direct.ok && hex(direct.publicKey)).toBe(hex(root.publicKey));
    const chained = resolveSigningKey(suite, keyId(signing.publicKey), cert, roots, at);
    expect(chained.ok && hex(chained.publicKey)).toBe(hex(signing.publicKey));
  });

  it.each([
    ['a key that is neither a root nor certified', () => resolveSigningKey(suite, keyId(signing.publicKey), undefined, roots, at), 'unknown-key'],
    ['a root of another operator', () => resolveSigningKey(suite, keyId(root.publicKey), undefined, roots, { ...at, operator: 'XX' }), 'unknown-key'],
    ['a certificate of another key than the one named', () => resolveSigningKey(suite, keyId(other.publicKey), cert, roots, at), 'certificate-key'],
    ['a certificate from a root not held', () => resolveSigningKey(suite, keyId(signing.publicKey), signKeyCertificate(other, { publicKey: signing.publicKey, scopes: ['CR'], validFrom: T0, validUntil: T0 + 86400 }).encoded, roots, at), 'unknown-root'],
    ['a tampered certificate (window stretched)', () => resolveSigningKey(suite, keyId(signing.publicKey), tamper(cert), roots, at), 'certificate-signature'],
    ['a certificate for another operator', () => resolveSigningKey(suite, keyId(signing.publicKey), signKeyCertificate(root, { publicKey: signing.publicKey, scopes: ['XX'], validFrom: T0, validUntil: T0 + 86400 }).encoded, [{ ...roots[0], scopes: ['*'] }], at), 'certificate-scope'],
    ['a ticket issued before the window', () => resolveSigningKey(suite, keyId(signing.publicKey), cert, roots, { ...at, at: T0 - 1 }), 'window'],
    ['a ticket issued after the window', () => resolveSigningKey(suite, keyId(signing.publicKey), cert, roots, { ...at, at: T0 + 86401 }), 'window'],
    ['a key retired for a verifier that has seen a later time', () => resolveSigningKey(suite, keyId(signing.publicKey), cert, roots, { ...at, now: T0 + 86401 }), 'retired'],
    ['a malformed certificate', () => resolveSigningKey(suite, keyId(signing.publicKey), cert.subarray(0, cert.length - 3), roots, at), 'format'],
  ])('refuses %s', (_what, run, failure) => {
    const r = run();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.failure).toBe(failure);
  });

  it('an issuer authorisation { C1, [A4], 9E } round-trips and verifies over "ETKT ISSUER 1" ‖ RC only', () => {
    const trust = suite === 'rsa' ? new CaTrust(CertificateAuthority.create('test').certificateDer) : new KgcTrust(new Uint8Array(0), new Uint8Array(0), cardIdentity);
    const rc = fromHex('0102030405060708');
    const a = decodeIssuerAuthorization(new AuthenticationServer(signing, trust, { certificate: cert }).authorizeIssuer(rc));
    expect(hex(a.keyId)).toBe(hex(keyId(signing.publicKey)));
    expect(hex(a.certificate!)).toBe(hex(cert));
    expect(getSuite(suite).verify(signing.publicKey, issuerAuthorizationMessage(rc), a.signature)).toBe(true);
    expect(getSuite(suite).verify(signing.publicKey, issuerAuthorizationMessage(fromHex('0102030405060709')), a.signature)).toBe(false);
    const bare = decodeIssuerAuthorization(new AuthenticationServer(root, trust).authorizeIssuer(rc));
    expect(bare.certificate).toBeUndefined();
    expect(() => decodeIssuerAuthorization(encodeIssuerAuthorization({ ...bare, keyId: bare.keyId.subarray(0, 7) }))).toThrow(TlvError);
  });
});

describe('masked serial (DF24)', () => {
  const mk = new Uint8Array(16).fill(9);
  const kPriv = privacyKey(mk, 'CR');
  const serial = fromHex('0011223344556677');
  it('changes with every RC, unmasks only with K_priv and the RC sent beside it', () => {
    const a = maskSerial(kPriv, serial, fromHex('A1A2A3A4A5A6A7A8'));
    const b = maskSerial(kPriv, serial, fromHex('B1B2B3B4B5B6B7B8'));
    expect(hex(a)).not.toBe(hex(b));
    expect(hex(a)).not.toContain(hex(serial));
    expect(hex(unmaskSerial(kPriv, a, fromHex('A1A2A3A4A5A6A7A8'))!)).toBe(hex(serial));
    expect(unmaskSerial(kPriv, a, fromHex('B1B2B3B4B5B6B7B8'))).toBeUndefined();
    expect(unmaskSerial(privacyKey(mk, 'XX'), a, fromHex('A1A2A3A4A5A6A7A8'))).toBeUndefined();
  });
});

/** The certificate with its DC (valid until) one second later and the old signature. */
function tamper(cert: Uint8Array): Uint8Array {
  const c = decodeKeyCertificate(cert);
  return tlv(T.KEY_CERTIFICATE, concat(keyCertificateBody({ ...c, validUntil: c.validUntil + 1 }), tlv(T.SIGNATURE, c.signature)));
}
