// The SM9 key generation centre (密鑰生成中心): holds the sign and encryption master keys and extracts
// identity private keys for the authority, checking terminals and cards. Its master public keys are public.

import { hex } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import * as sm9 from '../crypto/sm9/index.js';
import { sm9DecrypterEncoding, sm9EncryptionPublicKey, sm9Provider, sm9SignerEncoding, sm9SigningPublicKey } from '../crypto/sm9-suite.js';
import type { Decrypter, Signer } from '../crypto/suite.js';
import type { IdentityKeyIssuer } from './trust.js';

/** The KGC's SM9 master key pairs (signing and encryption). */
export interface KgcMasterKeys {
  signMasterPrivateKey: Uint8Array;
  signMasterPublicKey: Uint8Array;
  encMasterPrivateKey: Uint8Array;
  encMasterPublicKey: Uint8Array;
}

/** The identity policy for cards: an identity is derived from the card serial, so anyone can recompute it. */
export function cardIdentity(serial: Uint8Array): string {
  return `eticket:card:${hex(serial)}`;
}

export class KeyGenerationCentre implements IdentityKeyIssuer {
  private constructor(readonly keys: KgcMasterKeys) {}

  /** A KGC with new master keys. */
  static create(): KeyGenerationCentre {
    const s = sm9.generateSignMasterKey();
    const e = sm9.generateEncMasterKey();
    return new KeyGenerationCentre({ signMasterPrivateKey: s.privateKey, signMasterPublicKey: s.publicKey, encMasterPrivateKey: e.privateKey, encMasterPublicKey: e.publicKey });
  }

  /** A KGC from stored master keys. */
  static fromKeys(keys: KgcMasterKeys): KeyGenerationCentre {
    return new KeyGenerationCentre(keys);
  }

  /** The signing master public key (gates verify identity signatures with it). */
  get signMasterPublicKey(): Uint8Array {
    return this.keys.signMasterPublicKey;
  }

  /** The encryption master public key (the authority seals to identities with it). */
  get encMasterPublicKey(): Uint8Array {
    return this.keys.encMasterPublicKey;
  }

  /** The identity of the card with this serial. */
  identityFor(serial: Uint8Array): string {
    return cardIdentity(serial);
  }

  /** Private encoding of the SM9 signing key of `identity` (hid 01). */
  extractSigningKey(identity: string): Uint8Array {
    if (!identity) throw new InvalidInputError('empty identity');
    const user = sm9.extractSignPrivateKey(this.keys.signMasterPrivateKey, new TextEncoder().encode(identity));
    return sm9SignerEncoding(identity, this.keys.signMasterPublicKey, user);
  }

  /** Private encoding of the SM9 decryption key of `identity` (hid 03). */
  extractEncryptionKey(identity: string): Uint8Array {
    if (!identity) throw new InvalidInputError('empty identity');
    const user = sm9.extractEncPrivateKey(this.keys.encMasterPrivateKey, new TextEncoder().encode(identity));
    return sm9DecrypterEncoding(identity, this.keys.encMasterPublicKey, user);
  }

  /** A signer with the identity's private key (tests; real identities get their key extracted once). */
  signer(identity: string): Signer {
    return sm9Provider.signer(this.extractSigningKey(identity));
  }

  /** A decrypter with the identity's private key. */
  decrypter(identity: string): Decrypter {
    return sm9Provider.decrypter(this.extractEncryptionKey(identity));
  }

  /** The identity's signing public key (derived from the master public key). */
  signingPublicKey(identity: string): Uint8Array {
    return sm9SigningPublicKey(identity, this.keys.signMasterPublicKey);
  }

  /** The identity's encryption public key (derived from the master public key). */
  encryptionPublicKey(identity: string): Uint8Array {
    return sm9EncryptionPublicKey(identity, this.keys.encMasterPublicKey);
  }
}
