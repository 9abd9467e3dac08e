// The SM9 suite adapter: key encodings, identity binding, and the KGC trust policy. The SM9 algorithms
// themselves are checked against GM/T 0044-2016 known answers in sdk/crypto/sm9/.

import { beforeAll, describe, expect, it } from 'vitest';
import { sm9Provider, sm9Suite, sm9Identity } from './sm9-suite.js';
import { KeyGenerationCentre, cardIdentity } from '../roles/kgc.js';
import { KgcTrust } from '../roles/trust.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { utf8 } from '../bytes.js';

describe('SM9 suite adapter', () => {
  let kgc: KeyGenerationCentre;
  beforeAll(() => {
    kgc = KeyGenerationCentre.create();
  });

  it('signs and verifies under the identity, and refuses another identity or message', () => {
    const signer = kgc.signer('alice');
    const sig = signer.sign(utf8('ticket'));
    expect(sm9Suite.verify(signer.publicKey, utf8('ticket'), sig)).toBe(true);
    expect(sm9Suite.verify(kgc.signingPublicKey('bob'), utf8('ticket'), sig)).toBe(false);
    expect(sm9Suite.verify(signer.publicKey, utf8('ticket!'), sig)).toBe(false);
    expect(sm9Suite.verify(signer.publicKey, utf8('ticket'), sig.subarray(1))).toBe(false);
    expect(sm9Identity(signer.publicKey)).toBe('alice');
  });

  it('encapsulates a 16-byte key only the identity can recover', () => {
    const { key, encapsulation } = sm9Suite.encapsulate(kgc.encryptionPublicKey('card-1'));
    expect(key.length).toBe(16);
    expect(kgc.decrypter('card-1').decapsulate(encapsulation)).toEqual(key);
    // A KEM has no integrity of its own: another identity derives another key, which the envelope MAC refuses.
    expect(kgc.decrypter('card-2').decapsulate(encapsulation)).not.toEqual(key);
  });

  it('refuses a private key whose user key belongs to another identity', () => {
    const aliceKey = kgc.extractSigningKey('alice');
    const bob = kgc.extractSigningKey('bob');
    // splice bob's user key (last TLV) under alice's identity
    const forged = new Uint8Array([...aliceKey.subarray(0, aliceKey.length - 66), ...bob.subarray(bob.length - 66)]);
    expect(() => sm9Provider.signer(forged)).toThrow(InvalidInputError);
    expect(() => sm9Provider.signer(aliceKey)).not.toThrow();
  });

  it('checkPublicKey accepts exactly one master public key and no private part', () => {
    expect(() => sm9Suite.checkPublicKey(kgc.signingPublicKey('x'))).not.toThrow();
    expect(() => sm9Suite.checkPublicKey(kgc.encryptionPublicKey('x'))).not.toThrow();
    expect(() => sm9Suite.checkPublicKey(kgc.extractSigningKey('x'))).toThrow(InvalidInputError);
    expect(() => sm9Suite.checkPublicKey(utf8('garbage'))).toThrow(InvalidInputError);
  });

  it('KgcTrust derives card keys from the serial and refuses a card claiming another identity', () => {
    const trust = new KgcTrust(kgc.signMasterPublicKey, kgc.encMasterPublicKey, cardIdentity);
    const serial = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(sm9Identity(trust.encryptionKey({ suite: 'sm9', serial }))).toBe('eticket:card:0102030405060708');
    expect(() => trust.encryptionKey({ suite: 'sm9', serial, identity: 'eticket:card:FFFFFFFFFFFFFFFF' })).toThrow(CryptoError);
  });
});
