// Personalisation of a blank card in the issuer's secure facility: card key pairs (generated on the
// card for RSA, extracted by the KGC for SM9), certificates, authority and terminal keys, the
// diversified checking keys of gate mode sym (one per operator master key), then LOCK.

import { concat, hex, utf8 } from '../sdk/bytes.js';
import { InvalidInputError } from '../sdk/errors.js';
import { keyId } from '../sdk/crypto/suite.js';
import { diversify, masterKeyId } from '../sdk/crypto/symmetric.js';
import { T } from '../sdk/spec.js';
import type { CertificateAuthority } from '../sdk/roles/ca.js';
import type { CardCredentials, IdentityKeyIssuer } from '../sdk/roles/trust.js';

export type { IdentityKeyIssuer };
import { tlv } from '../sdk/tlv.js';
import { IssuingTerminal } from './issuing.js';
import type { CardSession } from './session.js';

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
  /** Gate mode sym: operators' checking master keys; the card gets K_card = diversify(MK, serial, operator). */
  masterKeys?: { operator: string; key: Uint8Array }[];
}

function keyObject(grant: KeyGrant): Uint8Array {
  if (grant.scopes.length === 0) throw new InvalidInputError('a key grant needs at least one operator scope');
  return concat(tlv(T.KEY_ID, keyId(grant.publicKey)), ...grant.scopes.map((s) => tlv(T.OPERATOR_SCOPE, utf8(s))), tlv(T.KEY_MATERIAL, grant.publicKey));
}

/** Personalise a blank card (key pairs, certificates, authority and terminal keys, diversified sym keys), then LOCK it; returns its credentials. */
export async function personalizeCard(session: CardSession, profile: PersonalizationProfile): Promise<CardCredentials> {
  const issuing = new IssuingTerminal(session);
  const info = await issuing.open();
  if (info.lifecycle !== 'PERSONALIZING') throw new InvalidInputError(`card ${info.serialHex} is already personalised (locked)`);
  const creds: CardCredentials = { suite: info.suite, serial: info.serial };
  if (info.suite === 'rsa') {
    if (!profile.ca) throw new InvalidInputError('an RSA card needs a CA to certify its keys');
    const p2 = profile.rsaKeySize === 3072 ? 0x01 : 0x00;
    const encPub = (await session.send('GENERATE KEY', { p1: 0x01, p2 })).data;
    const sigPub = (await session.send('GENERATE KEY', { p1: 0x02, p2 })).data;
    creds.encryptionCertificate = profile.ca.certifyCardKey(info.serial, 'encryption', encPub);
    creds.signingCertificate = profile.ca.certifyCardKey(info.serial, 'signature', sigPub);
    await session.send('PUT DATA', { p2: T.CARD_ENCRYPTION_CERTIFICATE, data: creds.encryptionCertificate });
    await session.send('PUT DATA', { p2: T.CARD_SIGNING_CERTIFICATE, data: creds.signingCertificate });
  } else {
    if (!profile.kgc) throw new InvalidInputError('an SM9 card needs the key generation centre');
    const identity = profile.kgc.identityFor(info.serial);
    creds.identity = identity;
    await session.send('PUT DATA', { p2: T.CARD_IDENTITY, data: utf8(identity) });
    await session.send('PUT KEY', { p1: 0x03, data: tlv(T.KEY_MATERIAL, profile.kgc.extractEncryptionKey(identity)) });
    await session.send('PUT KEY', { p1: 0x04, data: tlv(T.KEY_MATERIAL, profile.kgc.extractSigningKey(identity)) });
  }
  for (const a of profile.authorities) await session.send('PUT KEY', { p1: 0x01, data: keyObject(a) });
  for (const t of profile.terminals) await session.send('PUT KEY', { p1: 0x02, data: keyObject(t) });
  for (const mk of profile.masterKeys ?? []) {
    const data = concat(tlv(T.KEY_ID, masterKeyId(mk.key, mk.operator)), tlv(T.OPERATOR_SCOPE, utf8(mk.operator)), tlv(T.KEY_MATERIAL, diversify(mk.key, info.serial, mk.operator)));
    await session.send('PUT KEY', { p1: 0x05, data });
  }
  await session.send('LOCK');
  return creds;
}

