// The issuing terminal (出票終端): tells who the card is and forwards first ciphertexts to it (LOAD).
// It holds no secret; a sealed ticket is only usable on the card it was sealed to.

import { decodeAnswer } from '../sdk/commands/answer.js';
import { decodeCapacity, type CardCapacity } from '../sdk/commands/get-data.js';
import { decodeLoadAnswer, type LoadAnswer } from '../sdk/commands/load.js';
import { parseFci, type CardInfo } from '../sdk/commands/select.js';
import { CardStatusError } from '../sdk/errors.js';
import { textField } from '../sdk/fields.js';
import { SW, T } from '../sdk/spec.js';
import type { CardCredentials } from '../sdk/roles/trust.js';
import type { CardSession } from './session.js';

// The FCI codec lives with SELECT (sdk/commands/select.ts); gate vendors have found it here.
export { parseFci, type CardCapacity, type CardInfo };

/** The issuing terminal (出票終端): learns who the card is and loads first ciphertexts onto it. It holds no secret. */
export class IssuingTerminal {
  private info?: CardInfo;

  constructor(readonly session: CardSession) {}

  /** SELECT the application and read the FCI. */
  async open(): Promise<CardInfo> {
    const fci = await this.session.select();
    this.info = decodeAnswer('SELECT', () => parseFci(fci));
    return this.info;
  }

  /** The card's FCI, selecting the application first if this terminal has not yet. */
  async cardInfo(): Promise<CardInfo> {
    return this.info ?? this.open();
  }

  /** NVM capacity, free bytes, tickets and tombstones on the card. */
  async capacity(): Promise<CardCapacity> {
    await this.cardInfo();
    const d = (await this.session.send('GET DATA', { p2: T.CAPACITY })).data;
    return decodeAnswer('GET DATA', () => decodeCapacity(d));
  }

  /** GET DATA of one object, or undefined when the card does not hold it (6A88). */
  async getData(tag: number): Promise<Uint8Array | undefined> {
    await this.cardInfo();
    const r = await this.session.send('GET DATA', { p2: tag, accept: [SW.REFERENCED_DATA_NOT_FOUND] });
    return r.sw === SW.SUCCESS ? r.data : undefined;
  }

  /** What the authentication server needs to seal a ticket to this card. */
  async credentials(): Promise<CardCredentials> {
    const info = await this.cardInfo();
    const identity = await this.getData(T.CARD_IDENTITY);
    return {
      suite: info.suite,
      serial: info.serial,
      encryptionCertificate: await this.getData(T.CARD_ENCRYPTION_CERTIFICATE),
      signingCertificate: await this.getData(T.CARD_SIGNING_CERTIFICATE),
      identity: identity ? decodeAnswer('GET DATA', () => textField(identity, 'card identity')) : undefined,
    };
  }

  /** LOAD a first ciphertext. Card refusals (full, duplicate, not for this card, ...) throw CardStatusError. */
  async load(sealed: Uint8Array): Promise<LoadAnswer> {
    await this.cardInfo();
    const r = await this.session.send('LOAD', { data: sealed });
    return decodeAnswer('LOAD', () => decodeLoadAnswer(r.data));
  }
}

/** Whether `e` is the card refusing a LOAD because the ticket is already on it (ALREADY_EXISTS). */
export function isDuplicate(e: unknown): boolean {
  return e instanceof CardStatusError && e.sw === SW.ALREADY_EXISTS;
}
