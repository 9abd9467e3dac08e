// Authority key certificates (A4, apdu-spec README 3.6): the long-term root key that cards hold certifies
// a short-lived signing key, its operators and its validity window. Encode, decode, sign, verify; both suites.

import { concat, equal, fromUtf8, hex, readUint, u32, utf8 } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { getSuite } from '../crypto/suites.js';
import { keyId, type Signer } from '../crypto/suite.js';
import { SUITE, T, type SuiteName } from '../spec.js';
import { TlvError, TlvMap, tlv } from '../tlv.js';

/** Domain separation of the certificate signature (no other signature in the protocol starts so). */
export const KEY_CERTIFICATE_CONTEXT = utf8('ETKT AKC 1');

/** The fields of an authority key certificate (A4) that the root key signs, in the order sent. */
export interface KeyCertificateFields {
  /** C1: key id of the certified key (first 8 bytes of SHA-256 over `publicKey`). */
  keyId: Uint8Array;
  /** C9: operators the key may sign for ('*' for any). */
  scopes: string[];
  /** D0: the certified public key, in the suite's encoding (as PUT KEY P1=01 takes it). */
  publicKey: Uint8Array;
  /** D2 / DC: validity window, epoch seconds. */
  validFrom: number;
  validUntil: number;
  /** DD: key id of the root key that signs the certificate. */
  rootKeyId: Uint8Array;
}

/** A decoded or freshly signed authority key certificate (A4): its fields, the root's signature and the encoding. */
export interface KeyCertificate extends KeyCertificateFields {
  signature: Uint8Array;
  /** The whole A4 object as sent. */
  encoded: Uint8Array;
}

const ORDER = [T.KEY_ID, T.OPERATOR_SCOPE, T.KEY_MATERIAL, T.VALID_FROM, T.VALID_UNTIL, T.CERTIFYING_KEY_ID, T.SIGNATURE];

function checkFields(f: KeyCertificateFields): void {
  if (f.keyId.length !== 8 || f.rootKeyId.length !== 8) throw new InvalidInputError('key ids are 8 bytes');
  if (!equal(f.keyId, keyId(f.publicKey))) throw new InvalidInputError('C1 is not the key id of the certified public key');
  if (!f.scopes.length) throw new InvalidInputError('a key certificate names at least one operator');
  for (const s of f.scopes) if (!/^([A-Za-z0-9_.-]{1,16}|\*)$/.test(s)) throw new InvalidInputError(`operator scope "${s}" is not an operator code or *`);
  for (const t of [f.validFrom, f.validUntil]) if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new InvalidInputError('validity times are epoch seconds that fit 4 bytes');
  if (f.validUntil <= f.validFrom) throw new InvalidInputError('a key certificate must end after it starts');
  if (f.publicKey.length < 1 || f.publicKey.length > 2048) throw new InvalidInputError('public key of 1..2048 bytes');
}

/** Encoded fields C1 … DD: exactly what the root key signs. */
export function keyCertificateBody(f: KeyCertificateFields): Uint8Array {
  checkFields(f);
  return concat(
    tlv(T.KEY_ID, f.keyId),
    ...f.scopes.map((s) => tlv(T.OPERATOR_SCOPE, utf8(s))),
    tlv(T.KEY_MATERIAL, f.publicKey),
    tlv(T.VALID_FROM, u32(f.validFrom)),
    tlv(T.VALID_UNTIL, u32(f.validUntil)),
    tlv(T.CERTIFYING_KEY_ID, f.rootKeyId),
  );
}

/** The root key certifies a signing key. */
export function signKeyCertificate(root: Signer, f: Omit<KeyCertificateFields, 'rootKeyId' | 'keyId'> & { keyId?: Uint8Array }): KeyCertificate {
  const fields: KeyCertificateFields = { ...f, keyId: f.keyId ?? keyId(f.publicKey), rootKeyId: keyId(root.publicKey) };
  getSuite(root.suite).checkPublicKey(fields.publicKey);
  const body = keyCertificateBody(fields);
  const signature = root.sign(concat(KEY_CERTIFICATE_CONTEXT, body));
  return { ...fields, signature, encoded: tlv(T.KEY_CERTIFICATE, concat(body, tlv(T.SIGNATURE, signature))) };
}

/** Strict decoding: the fields in the spec's order, each once (C9 one or more), nothing else. */
export function decodeKeyCertificate(encoded: Uint8Array): KeyCertificate {
  try {
    const outer = TlvMap.parse(encoded, { allowed: [T.KEY_CERTIFICATE] });
    const m = TlvMap.parse(outer.require(T.KEY_CERTIFICATE), { allowed: ORDER, repeatable: [T.OPERATOR_SCOPE] });
    let last = -1;
    for (const item of m.items) {
      const i = ORDER.indexOf(item.tag);
      if (i < last) throw new TlvError(`tag ${item.tag.toString(16).toUpperCase()} out of order`);
      last = i;
    }
    const scopes = m.all(T.OPERATOR_SCOPE).map((s) => fromUtf8(s));
    if (!scopes.length) throw new TlvError('missing operator scope (C9)');
    const cert: KeyCertificate = {
      keyId: m.bytes(T.KEY_ID, 8, 8, 'key id'),
      scopes,
      publicKey: m.bytes(T.KEY_MATERIAL, 1, 2048, 'public key'),
      validFrom: readUint(m.bytes(T.VALID_FROM, 4, 4, 'valid from')),
      validUntil: readUint(m.bytes(T.VALID_UNTIL, 4, 4, 'valid until')),
      rootKeyId: m.bytes(T.CERTIFYING_KEY_ID, 8, 8, 'certifying key id'),
      signature: m.bytes(T.SIGNATURE, 1, 1024, 'signature'),
      encoded,
    };
    checkFields(cert);
    return cert;
  } catch (e) {
    if (e instanceof TlvError || e instanceof InvalidInputError) throw new CryptoError(`not a valid key certificate: ${e.message}`, { cause: e });
    if (e instanceof TypeError) throw new CryptoError('not a valid key certificate: a text field is not UTF-8', { cause: e });
    throw e;
  }
}

/**
 * Check a certificate against the root public key: signed by it, names it (DD), and (with `at`) valid at
 * that time for `operator`. Returns the decoded certificate; throws CryptoError naming what is wrong.
 */
export function verifyKeyCertificate(encoded: Uint8Array, root: { suite: SuiteName; publicKey: Uint8Array }, check: { at?: number; operator?: string } = {}): KeyCertificate {
  const cert = decodeKeyCertificate(encoded);
  if (!equal(cert.rootKeyId, keyId(root.publicKey))) throw new CryptoError(`key certificate was made by root key ${hex(cert.rootKeyId)}, not ${hex(keyId(root.publicKey))}`);
  const body = keyCertificateBody(cert);
  const suite = getSuite(root.suite);
  if (suite.id !== SUITE[root.suite] || !suite.verify(root.publicKey, concat(KEY_CERTIFICATE_CONTEXT, body), cert.signature)) {
    throw new CryptoError(`key certificate of ${hex(cert.keyId)} does not verify with root key ${hex(cert.rootKeyId)}: forged or altered`);
  }
  if (check.at !== undefined && (check.at < cert.validFrom || check.at > cert.validUntil)) {
    throw new CryptoError(`key ${hex(cert.keyId)} is valid from ${iso(cert.validFrom)} until ${iso(cert.validUntil)}, not at ${iso(check.at)}`);
  }
  if (check.operator !== undefined && !cert.scopes.includes('*') && !cert.scopes.includes(check.operator)) {
    throw new CryptoError(`key ${hex(cert.keyId)} is not certified for operator ${check.operator}`);
  }
  return cert;
}

const iso = (t: number) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
