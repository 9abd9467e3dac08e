// How back-office roles and gates come to trust a card's public keys: through the CA's certificates
// (RSA suite) or through the key generation centre's master keys and the card identity (SM9 suite).

import { hex } from '../bytes.js';
import { CryptoError } from '../errors.js';
import type { SuiteName } from '../spec.js';
import { verifyCardCertificate, type CertifiedCardKey } from './ca.js';
import { sm9EncryptionPublicKey, sm9SigningPublicKey } from '../crypto/sm9-suite.js';

/** What a card tells about itself (GET DATA), enough to find and check its public keys. */
export interface CardCredentials {
  suite: SuiteName;
  serial: Uint8Array;
  encryptionCertificate?: Uint8Array;
  signingCertificate?: Uint8Array;
  identity?: string;
}

/** How a terminal or the authority finds a card's public keys and knows they are genuine. */
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
  /** Certificates already traced to the CA (by usage and bytes): a batch onto one card checks its certificate once. */
  private readonly verified = new Map<string, CertifiedCardKey>();
  /** How many certificate chains were checked (not served from the cache): for tests and the benchmark. */
  chainChecks = 0;

  constructor(readonly caCertificate: Uint8Array) {}

  private check(card: CardCredentials, cert: Uint8Array | undefined, usage: 'encryption' | 'signature'): Uint8Array {
    if (!cert) throw new CryptoError(`card ${hex(card.serial)} has no ${usage} certificate`);
    const key = `${usage}:${hex(cert)}`;
    let c = this.verified.get(key);
    // The CA's signature holds for these bytes for ever; the validity window is checked on every use.
    if (c && new Date() > c.notAfter) c = undefined;
    if (!c) {
      this.chainChecks++;
      c = verifyCardCertificate(this.caCertificate, cert, usage);
      if (this.verified.size >= CaTrust.CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, c);
    }
    if (hex(c.serial) !== hex(card.serial)) throw new CryptoError(`certificate names card ${hex(c.serial)}, not ${hex(card.serial)}`);
    return c.publicKey;
  }

  /** Cards remembered at once (oldest forgotten first): bounded memory for a long-running back office. */
  static readonly CACHE_ENTRIES = 4096;

  encryptionKey(card: CardCredentials): Uint8Array {
    return this.check(card, card.encryptionCertificate, 'encryption');
  }

  signingKey(card: CardCredentials): Uint8Array {
    return this.check(card, card.signingCertificate, 'signature');
  }
}

/** SM9: the key generation centre's extraction, for a card identity derived from its serial. */
export interface IdentityKeyIssuer {
  /** The identity of the card with this serial. */
  identityFor(serial: Uint8Array): string;
  /** The identity's encryption private key. */
  extractEncryptionKey(identity: string): Uint8Array;
  /** The identity's signing private key. */
  extractSigningKey(identity: string): Uint8Array;
}

/**
 * SM9 suite: a card's public keys are its identity under the KGC's master public keys. The identity
 * must be the one the policy derives from the serial, so a card cannot claim someone else's.
 */
export class KgcTrust implements CardTrust {
  readonly suite = 'sm9' as const;
  readonly needsSigningCertificate = false;

  constructor(
    readonly signMasterPublicKey: Uint8Array,
    readonly encMasterPublicKey: Uint8Array,
    private readonly identityFor: (serial: Uint8Array) => string,
  ) {}

  private identity(card: CardCredentials): string {
    const expected = this.identityFor(card.serial);
    if (card.identity !== undefined && card.identity !== expected) {
      throw new CryptoError(`card ${hex(card.serial)} claims identity "${card.identity}", policy says "${expected}"`);
    }
    return expected;
  }

  encryptionKey(card: CardCredentials): Uint8Array {
    return sm9EncryptionPublicKey(this.identity(card), this.encMasterPublicKey);
  }

  signingKey(card: CardCredentials): Uint8Array {
    return sm9SigningPublicKey(this.identity(card), this.signMasterPublicKey);
  }
}
