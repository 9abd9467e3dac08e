// How back-office roles and gates come to trust a card's public keys: through the CA's certificates
// (RSA suite) or through the key generation centre's master keys and the card identity (SM9 suite).

import { hex } from '../bytes.js';
import { CryptoError } from '../errors.js';
import type { SuiteName } from '../spec.js';
import { verifyCardCertificate } from './ca.js';

/** What a card tells about itself (GET DATA), enough to find and check its public keys. */
export interface CardCredentials {
  suite: SuiteName;
  serial: Uint8Array;
  encryptionCertificate?: Uint8Array;
  signingCertificate?: Uint8Array;
  identity?: string;
}

export interface CardTrust {
  readonly suite: SuiteName;
  /** The card's encryption public key (key 2), only if it can be traced to the trust root. */
  encryptionKey(card: CardCredentials): Uint8Array;
  /** The card's receipt-signing public key, only if it can be traced to the trust root. */
  signingKey(card: CardCredentials): Uint8Array;
  /** Whether signingKey needs the card's signing certificate (a GET DATA on first sight of a card). */
  readonly needsSigningCertificate: boolean;
}

/** RSA suite: keys are trusted when their X.509 certificate chains to the CA and names the card. */
export class CaTrust implements CardTrust {
  readonly suite = 'rsa' as const;
  readonly needsSigningCertificate = true;
  constructor(readonly caCertificate: Uint8Array) {}

  private check(card: CardCredentials, cert: Uint8Array | undefined, usage: 'encryption' | 'signature'): Uint8Array {
    if (!cert) throw new CryptoError(`card ${hex(card.serial)} has no ${usage} certificate`);
    const c = verifyCardCertificate(this.caCertificate, cert, usage);
    if (hex(c.serial) !== hex(card.serial)) throw new CryptoError(`certificate names card ${hex(c.serial)}, not ${hex(card.serial)}`);
    return c.publicKey;
  }

  encryptionKey(card: CardCredentials): Uint8Array {
    return this.check(card, card.encryptionCertificate, 'encryption');
  }

  signingKey(card: CardCredentials): Uint8Array {
    return this.check(card, card.signingCertificate, 'signature');
  }
}
