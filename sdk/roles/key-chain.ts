// Which public key verifies a TF_V or an issuer authorisation: a root key the verifier holds, or a signing key
// that one of them certified (A4). Card (LOAD, EXTERNAL AUTHENTICATE), gates and the back office run these checks.

import { concat, equal, hex } from '../bytes.js';
import { CryptoError } from '../errors.js';
import { getSuite } from '../crypto/suites.js';
import type { SuiteName } from '../spec.js';
import { decodeKeyCertificate, KEY_CERTIFICATE_CONTEXT, keyCertificateBody, type KeyCertificate } from './key-certificate.js';

/** A root key as a verifier holds it: the card's PUT KEY P1=01 entries, a gate's trusted authorities. */
export interface RootKey {
  keyId: Uint8Array;
  publicKey: Uint8Array;
  /** Operators it may sign for ('*' for any). */
  scopes: string[];
}

/**
 * Why no key was found, in the order of the checks (apdu-spec README 3.6); the card answers:
 * format 6A80; unknown-key, unknown-root, root-scope, certificate-scope 6A88; certificate-key,
 * certificate-signature, window, retired 9101.
 */
export type KeyChainFailure = 'format' | 'unknown-key' | 'certificate-key' | 'unknown-root' | 'certificate-signature' | 'certificate-scope' | 'window' | 'retired';

/** What a verifier checks a signing key against besides the chain: operator, claimed time, its own notion of now. */
export interface KeyChainCheck {
  /** The operator the signature is for (a ticket's); absent for an issuer authorisation, which any root may give. */
  operator?: string;
  /** The time the signature claims (a ticket's issuedAt): it must lie in the certificate's window. */
  at?: number;
  /**
   * What the verifier knows of the time (a card: the newest issue time of the tickets it accepted, never a terminal's
   * clock): a certificate that ended before it is retired.
   */
  now?: number;
}

/** The public key that verifies the signature with the root it chains to, or why there is none. */
export type KeyChainResult = { ok: true; publicKey: Uint8Array; root: RootKey; certificate?: KeyCertificate } | { ok: false; failure: KeyChainFailure; message: string };

const scopeAllows = (scopes: string[], operator?: string) => operator === undefined || scopes.includes('*') || scopes.includes(operator);

/**
 * The key that must verify a signature naming `keyId`, with the optional certificate (encoded A4) beside it.
 * Without a certificate, `keyId` must name a root scoped to the operator; with one, the certificate must be the
 * key's, signed by such a root, scoped to the operator, valid at `at` and not ended before `now`.
 */
export function resolveSigningKey(suite: SuiteName, keyId: Uint8Array, certificate: Uint8Array | undefined, roots: readonly RootKey[], check: KeyChainCheck = {}): KeyChainResult {
  const fail = (failure: KeyChainFailure, message: string): KeyChainResult => ({ ok: false, failure, message });
  if (!certificate) {
    const root = roots.find((r) => equal(r.keyId, keyId) && scopeAllows(r.scopes, check.operator));
    return root ? { ok: true, publicKey: root.publicKey, root } : fail('unknown-key', `no root key ${hex(keyId)}${check.operator ? ` for operator ${check.operator}` : ''} and no certificate of it`);
  }
  let cert: KeyCertificate;
  try {
    cert = decodeKeyCertificate(certificate);
  } catch (e) {
    return fail('format', (e as Error).message);
  }
  if (!equal(cert.keyId, keyId)) return fail('certificate-key', `the certificate is of key ${hex(cert.keyId)}, the signature names ${hex(keyId)}`);
  const root = roots.find((r) => equal(r.keyId, cert.rootKeyId) && scopeAllows(r.scopes, check.operator));
  if (!root) return fail('unknown-root', `the certificate of ${hex(cert.keyId)} was made by key ${hex(cert.rootKeyId)}, not a root key held here${check.operator ? ` for operator ${check.operator}` : ''}`);
  if (!getSuite(suite).verify(root.publicKey, concat(KEY_CERTIFICATE_CONTEXT, keyCertificateBody(cert)), cert.signature)) {
    return fail('certificate-signature', `the certificate of ${hex(cert.keyId)} does not verify with root key ${hex(root.keyId)}: forged or altered`);
  }
  if (!scopeAllows(cert.scopes, check.operator)) return fail('certificate-scope', `key ${hex(cert.keyId)} is not certified for operator ${check.operator}`);
  if (check.at !== undefined && (check.at < cert.validFrom || check.at > cert.validUntil)) {
    return fail('window', `key ${hex(cert.keyId)} is valid from ${iso(cert.validFrom)} until ${iso(cert.validUntil)}, not at ${iso(check.at)}`);
  }
  if (check.now !== undefined && check.now > cert.validUntil) return fail('retired', `key ${hex(cert.keyId)} ended at ${iso(cert.validUntil)}, before ${iso(check.now)}: retired`);
  return { ok: true, publicKey: cert.publicKey, root, certificate: cert };
}

/** resolveSigningKey for hosts: the key, or CryptoError naming what is wrong. */
export function signingKeyOrThrow(suite: SuiteName, keyId: Uint8Array, certificate: Uint8Array | undefined, roots: readonly RootKey[], check: KeyChainCheck = {}): { publicKey: Uint8Array; root: RootKey; certificate?: KeyCertificate } {
  const r = resolveSigningKey(suite, keyId, certificate, roots, check);
  if (!r.ok) throw new CryptoError(r.message);
  return r;
}

const iso = (t: number) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
