// The e-ticket authentication server (電子票認證服務器): binds TF_A to one card and signs it into TF_V with
// key 1 (its root key, or a signing key the root certified, A4 beside it), seals TF_A ‖ TF_V to that card with
// key 2 (the first ciphertext), and authorises issuing terminals to learn a card's identity (EXTERNAL AUTHENTICATE).

import { encodeIssuerAuthorization, issuerAuthorizationMessage } from '../commands/external-authenticate.js';
import { encodeLoadPayload } from '../commands/load.js';
import { equal, hex } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { seal } from '../crypto/envelope.js';
import { getSuite } from '../crypto/suites.js';
import { keyId, signAsync, type Signer } from '../crypto/suite.js';
import { LIMITS, SUITE } from '../spec.js';
import {
  encodeTicketFace,
  encodeVerificationCode,
  FACE_VERSION,
  verificationCodeMessage,
  type TicketFace,
  type VerificationCode,
} from '../ticket.js';
import { decodeKeyCertificate } from './key-certificate.js';
import type { CardCredentials, CardTrust } from './trust.js';

/** A ticket face with its verification code TF_V. */
export interface SignedTicket {
  face: TicketFace;
  faceEncoded: Uint8Array;
  verificationCode: VerificationCode;
  verificationCodeEncoded: Uint8Array;
}

/** Options of an AuthenticationServer. */
export interface AuthenticationServerOptions {
  /**
   * A4 of the signing key, when it is not the root key cards hold: TF_V and issuer authorisations then carry it,
   * and cards personalised before the key existed accept it through the root that certified it.
   */
  certificate?: Uint8Array;
}

/** The e-ticket authentication server (電子票認證服務器): signs ticket faces (key 1) and seals them to one card (key 2). */
export class AuthenticationServer {
  readonly keyId: Uint8Array;
  /** A4 of the signing key (absent for the root key). */
  readonly certificate?: Uint8Array;

  constructor(private readonly signer: Signer, private readonly trust: CardTrust, options: AuthenticationServerOptions = {}) {
    if (trust.suite !== signer.suite) throw new InvalidInputError(`authority key is ${signer.suite}, card trust is ${trust.suite}`);
    this.keyId = keyId(signer.publicKey);
    if (options.certificate) {
      const cert = decodeKeyCertificate(options.certificate);
      if (!equal(cert.keyId, this.keyId)) throw new InvalidInputError(`the certificate is of key ${hex(cert.keyId)}, not of the signing key ${hex(this.keyId)}`);
      this.certificate = cert.encoded;
    }
  }

  /** The suite of the authority key. */
  get suite() {
    return this.signer.suite;
  }

  /** Key 6 (or the certified key): what verifies the TF_V this server makes. */
  get publicKey(): Uint8Array {
    return this.signer.publicKey;
  }

  /**
   * TF_V for `face` issued to `card`: the face becomes version 2 and names the card (94), so the signature binds
   * the ticket to that card. A card refuses the ticket if it names another card (9102), whoever sealed it.
   */
  sign(face: TicketFace, card: { serial: Uint8Array }): SignedTicket {
    const { bound, faceEncoded } = this.bind(face, card);
    return this.signed(bound, faceEncoded, this.signer.sign(verificationCodeMessage(faceEncoded)));
  }

  /** sign(), with the signature computed off this thread where the key allows (Signer.signAsync): for batches. */
  async signAsync(face: TicketFace, card: { serial: Uint8Array }): Promise<SignedTicket> {
    const { bound, faceEncoded } = this.bind(face, card);
    return this.signed(bound, faceEncoded, await signAsync(this.signer, verificationCodeMessage(faceEncoded)));
  }

  /** The face bound to the card (version 2, 94 naming it), encoded: what TF_V signs. */
  private bind(face: TicketFace, card: { serial: Uint8Array }): { bound: TicketFace; faceEncoded: Uint8Array } {
    if (card.serial.length !== 8) throw new InvalidInputError('card serial must be 8 bytes');
    const bound: TicketFace = { ...face, version: FACE_VERSION.CARD_BOUND, card: card.serial.slice() };
    return { bound, faceEncoded: encodeTicketFace(bound) };
  }

  private signed(bound: TicketFace, faceEncoded: Uint8Array, signature: Uint8Array): SignedTicket {
    const verificationCode: VerificationCode = {
      suite: SUITE[this.signer.suite],
      authorityKeyId: this.keyId,
      signature,
      ...(this.certificate ? { certificate: this.certificate } : {}),
    };
    const verificationCodeEncoded = encodeVerificationCode(verificationCode);
    // A longer TF_V would break the fixed view length; the card refuses it at LOAD (6A80).
    if (verificationCodeEncoded.length > LIMITS.verificationCodeSlot) throw new InvalidInputError(`TF_V of ${verificationCodeEncoded.length} bytes exceeds limits.verificationCodeSlot (${LIMITS.verificationCodeSlot}): certify fewer operator scopes`);
    return { face: bound, faceEncoded, verificationCode, verificationCodeEncoded };
  }

  /** The first ciphertext: a self-contained blob any channel can carry to the card (LOAD). */
  seal(ticket: SignedTicket, card: CardCredentials): Uint8Array {
    if (card.suite !== this.signer.suite) throw new InvalidInputError(`card suite ${card.suite} differs from the authority's ${this.signer.suite}`);
    const cardKey = this.trust.encryptionKey(card);
    return seal(getSuite(card.suite), cardKey, card.serial, encodeLoadPayload(ticket.faceEncoded, ticket.verificationCodeEncoded));
  }

  /** Sign `face` and seal it to `card` (its key traced to the trust root): the first ciphertext a card LOADs. */
  issue(face: TicketFace, card: CardCredentials): { sealed: Uint8Array; ticket: SignedTicket } {
    const ticket = this.sign(face, card);
    return { sealed: this.seal(ticket, card), ticket };
  }

  /**
   * EXTERNAL AUTHENTICATE data for a card's challenge (GET CHALLENGE): { C1, [A4], 9E over "ETKT ISSUER 1" ‖ RC }.
   * With it an issuing terminal reads the card's serial and certificates; without it a reader learns nothing.
   */
  authorizeIssuer(cardChallenge: Uint8Array): Uint8Array {
    if (cardChallenge.length !== LIMITS.challengeLength) throw new InvalidInputError(`a card challenge is ${LIMITS.challengeLength} bytes`);
    return encodeIssuerAuthorization({ keyId: this.keyId, certificate: this.certificate, signature: this.signer.sign(issuerAuthorizationMessage(cardChallenge)) });
  }
}
