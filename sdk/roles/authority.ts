// The e-ticket authentication server (電子票認證服務器): signs TF_A into TF_V with key 1, and seals
// TF_A ‖ TF_V to one card with key 2 (the first ciphertext), refusing cards it cannot trace to its trust root.

import { encodeLoadPayload } from '../commands/load.js';
import { InvalidInputError } from '../errors.js';
import { seal } from '../crypto/envelope.js';
import { getSuite } from '../crypto/suites.js';
import { keyId, type Signer } from '../crypto/suite.js';
import { SUITE } from '../spec.js';
import {
  encodeTicketFace,
  encodeVerificationCode,
  verificationCodeMessage,
  type TicketFace,
  type VerificationCode,
} from '../ticket.js';
import type { CardCredentials, CardTrust } from './trust.js';

/** A ticket face with its verification code TF_V. */
export interface SignedTicket {
  face: TicketFace;
  faceEncoded: Uint8Array;
  verificationCode: VerificationCode;
  verificationCodeEncoded: Uint8Array;
}

/** The e-ticket authentication server (電子票認證服務器): signs ticket faces (key 1) and seals them to one card (key 2). */
export class AuthenticationServer {
  readonly keyId: Uint8Array;

  constructor(private readonly signer: Signer, private readonly trust: CardTrust) {
    if (trust.suite !== signer.suite) throw new InvalidInputError(`authority key is ${signer.suite}, card trust is ${trust.suite}`);
    this.keyId = keyId(signer.publicKey);
  }

  /** The suite of the authority key. */
  get suite() {
    return this.signer.suite;
  }

  /** Key 6: what cards and checking terminals verify TF_V with. */
  get publicKey(): Uint8Array {
    return this.signer.publicKey;
  }

  /** Sign a ticket face into its verification code TF_V. */
  sign(face: TicketFace): SignedTicket {
    const faceEncoded = encodeTicketFace(face);
    const verificationCode: VerificationCode = {
      suite: SUITE[this.signer.suite],
      authorityKeyId: this.keyId,
      signature: this.signer.sign(verificationCodeMessage(faceEncoded)),
    };
    return { face, faceEncoded, verificationCode, verificationCodeEncoded: encodeVerificationCode(verificationCode) };
  }

  /** The first ciphertext: a self-contained blob any channel can carry to the card (LOAD). */
  seal(ticket: SignedTicket, card: CardCredentials): Uint8Array {
    if (card.suite !== this.signer.suite) throw new InvalidInputError(`card suite ${card.suite} differs from the authority's ${this.signer.suite}`);
    const cardKey = this.trust.encryptionKey(card);
    return seal(getSuite(card.suite), cardKey, card.serial, encodeLoadPayload(ticket.faceEncoded, ticket.verificationCodeEncoded));
  }

  /** Sign `face` and seal it to `card` (its key traced to the trust root): the first ciphertext a card LOADs. */
  issue(face: TicketFace, card: CardCredentials): { sealed: Uint8Array; ticket: SignedTicket } {
    const ticket = this.sign(face);
    return { sealed: this.seal(ticket, card), ticket };
  }
}
