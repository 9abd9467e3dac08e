// Keys 4/5 of a checking terminal in pki gate mode: a decryption key (ticket views sealed by the card)
// and a signing key (WRITE USAGE / DELETE commands). Cards know them by the bundle's key id.

import { encodeTerminalKey } from '../crypto/bundle.js';
import { RsaPrivateKey, type RsaKeySize } from '../crypto/rsa.js';
import { keyId, type Decrypter, type Signer } from '../crypto/suite.js';
import { InvalidInputError } from '../errors.js';

/** Keys 4/5 of a checking terminal in gate mode pki: a decryption key and a signing key, known to cards by the bundle's key id. */
export class TerminalKeys {
  readonly publicKey: Uint8Array;
  readonly keyId: Uint8Array;

  constructor(readonly encryption: Decrypter, readonly signature: Signer) {
    if (encryption.suite !== signature.suite) throw new InvalidInputError('terminal keys of two different suites');
    this.publicKey = encodeTerminalKey({ encryption: encryption.publicKey, signature: signature.publicKey });
    this.keyId = keyId(this.publicKey);
  }

  /** The suite of both keys. */
  get suite() {
    return this.signature.suite;
  }

  /** New RSA terminal keys (tests; production keys come from the office). */
  static generateRsa(bits: RsaKeySize = 2048): TerminalKeys {
    return new TerminalKeys(RsaPrivateKey.generate(bits), RsaPrivateKey.generate(bits));
  }
}
