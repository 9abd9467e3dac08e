// Personalisation of a blank card in the issuer's secure facility: card key pairs (generated on the
// card for RSA, extracted by the KGC for SM9), certificates, authority and terminal keys, the
// diversified checking keys of gate mode sym (one per operator master key), then LOCK.

import { GENERATE_KEY_P1, p2ForRsaBits } from '../sdk/commands/generate-key.js';
import { encodeIdentity, PUT_DATA_P2 } from '../sdk/commands/put-data.js';
import { encodeDiversifiedKey, encodeKeyGrant, encodePrivateKey, PUT_KEY_P1 } from '../sdk/commands/put-key.js';
import { InvalidInputError } from '../sdk/errors.js';
import { keyId } from '../sdk/crypto/suite.js';
import { diversify, masterKeyId, privacyKey } from '../sdk/crypto/symmetric.js';
import type { CertificateAuthority } from '../sdk/roles/ca.js';
import type { CardCredentials, IdentityKeyIssuer } from '../sdk/roles/trust.js';
import { IssuingTerminal } from './issuing.js';
import type { CardSession } from './session.js';

export type { IdentityKeyIssuer };

/** A public key to install into a card, with the operators it is valid for. */
export interface KeyGrant {
  publicKey: Uint8Array;
  /** Operators the key is valid for; ['*'] for all. */
  scopes: string[];
}

/** What personalisation installs: the authority and terminal keys, the card's key issuer (CA or KGC), sym master keys. */
export interface PersonalizationProfile {
  authorities: KeyGrant[];
  terminals: KeyGrant[];
  /** RSA suite: the CA that certifies the card's generated keys. */
  ca?: CertificateAuthority;
  rsaKeySize?: 2048 | 3072;
  /** SM9 suite. */
  kgc?: IdentityKeyIssuer;
  /** Gate mode sym: operators' checking master keys; the card gets K_card = diversify(MK, serial, operator) and the operator's K_priv. */
  masterKeys?: { operator: string; key: Uint8Array }[];
}

function keyObject(grant: KeyGrant): Uint8Array {
  if (grant.scopes.length === 0) throw new InvalidInputError('a key grant needs at least one operator scope');
  return encodeKeyGrant({ keyId: keyId(grant.publicKey), scopes: grant.scopes, key: grant.publicKey });
}

/**
 * Personalise a blank card (key pairs, certificates, authority and terminal keys, diversified sym keys, K_priv), then
 * LOCK it; returns its credentials. Runs in the secure facility: a card in PERSONALIZING state answers GET DATA without
 * issuer authentication.
 */
export async function personalizeCard(session: CardSession, profile: PersonalizationProfile): Promise<CardCredentials> {
  const issuing = new IssuingTerminal(session);
  const fci = await issuing.select();
  if (fci.lifecycle !== 'PERSONALIZING') throw new InvalidInputError('the card is already personalised (locked)');
  const info = await issuing.open();
  const creds: CardCredentials = { suite: info.suite, serial: info.serial };
  if (info.suite === 'rsa') {
    if (!profile.ca) throw new InvalidInputError('an RSA card needs a CA to certify its keys');
    const p2 = p2ForRsaBits(profile.rsaKeySize ?? 2048);
    const encPub = (await session.send('GENERATE KEY', { p1: GENERATE_KEY_P1.ENCRYPTION, p2 })).data;
    const sigPub = (await session.send('GENERATE KEY', { p1: GENERATE_KEY_P1.SIGNING, p2 })).data;
    creds.encryptionCertificate = profile.ca.certifyCardKey(info.serial, 'encryption', encPub);
    creds.signingCertificate = profile.ca.certifyCardKey(info.serial, 'signature', sigPub);
    await session.send('PUT DATA', { p2: PUT_DATA_P2.ENCRYPTION_CERTIFICATE, data: creds.encryptionCertificate });
    await session.send('PUT DATA', { p2: PUT_DATA_P2.SIGNING_CERTIFICATE, data: creds.signingCertificate });
  } else {
    if (!profile.kgc) throw new InvalidInputError('an SM9 card needs the key generation centre');
    const identity = profile.kgc.identityFor(info.serial);
    creds.identity = identity;
    await session.send('PUT DATA', { p2: PUT_DATA_P2.IDENTITY, data: encodeIdentity(identity) });
    await session.send('PUT KEY', { p1: PUT_KEY_P1.CARD_ENCRYPTION_PRIVATE, data: encodePrivateKey(profile.kgc.extractEncryptionKey(identity)) });
    await session.send('PUT KEY', { p1: PUT_KEY_P1.CARD_SIGNING_PRIVATE, data: encodePrivateKey(profile.kgc.extractSigningKey(identity)) });
  }
  for (const a of profile.authorities) await session.send('PUT KEY', { p1: PUT_KEY_P1.AUTHORITY, data: keyObject(a) });
  for (const t of profile.terminals) await session.send('PUT KEY', { p1: PUT_KEY_P1.TERMINAL, data: keyObject(t) });
  for (const mk of profile.masterKeys ?? []) {
    const data = encodeDiversifiedKey({ keyId: masterKeyId(mk.key, mk.operator), operator: mk.operator, key: diversify(mk.key, info.serial, mk.operator), privacyKey: privacyKey(mk.key, mk.operator) });
    await session.send('PUT KEY', { p1: PUT_KEY_P1.DIVERSIFIED, data });
  }
  await session.send('LOCK');
  return creds;
}

