// The issuing terminal (出票終端): learns who the card is and forwards first ciphertexts to it (LOAD).
// It holds no secret: to read a locked card's identity it asks an authoriser (the authority, or the back office
// on its behalf) to sign the card's challenge (EXTERNAL AUTHENTICATE). LOAD itself needs nothing.

import { decodeAnswer } from '../sdk/commands/answer.js';
import { decodeCapacity, IDENTIFYING_OBJECTS, type CardCapacity } from '../sdk/commands/get-data.js';
import { CHALLENGE_LENGTH } from '../sdk/commands/get-challenge.js';
import { decodeLoadAnswer, type LoadAnswer } from '../sdk/commands/load.js';
import { parseFci, type FciInfo } from '../sdk/commands/select.js';
import { hex } from '../sdk/bytes.js';
import { CardMisbehavedError, CardStatusError, IssuerAuthorizationRequiredError } from '../sdk/errors.js';
import { textField } from '../sdk/fields.js';
import { SW, T } from '../sdk/spec.js';
import type { CardCredentials } from '../sdk/roles/trust.js';
import type { CardSession } from './session.js';

/** What SELECT tells (suite, life cycle, protocol version) and the serial, which only an authorised issuer reads. */
export interface CardInfo extends FciInfo {
  serial: Uint8Array;
  serialHex: string;
}

// The FCI codec lives with SELECT (sdk/commands/select.ts); gate vendors have found it here.
export { parseFci, type CardCapacity, type FciInfo };

/**
 * Signs a card's GET CHALLENGE for EXTERNAL AUTHENTICATE: the bytes { C1, [A4], 9E } (AuthenticationServer
 * .authorizeIssuer in process, BackofficeClient.authorizeIssuer over the API).
 */
export type IssuerAuthorizer = (cardChallenge: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** Options of an IssuingTerminal. */
export interface IssuingTerminalOptions {
  /** Needed to read a locked card's identity (serial, certificates, capacity); not for LOAD. */
  authorize?: IssuerAuthorizer;
}

/** The issuing terminal (出票終端): learns who the card is and loads first ciphertexts onto it. It holds no secret. */
export class IssuingTerminal {
  private fci?: FciInfo;
  private info?: CardInfo;

  constructor(readonly session: CardSession, private readonly options: IssuingTerminalOptions = {}) {}

  /** SELECT the application and read the FCI: nothing that identifies the card. */
  async select(): Promise<FciInfo> {
    const fci = await this.session.select();
    this.fci = decodeAnswer('SELECT', () => parseFci(fci));
    return this.fci;
  }

  /** SELECT, then the card's serial: open while personalising, after EXTERNAL AUTHENTICATE once locked. */
  async open(): Promise<CardInfo> {
    const fci = await this.select();
    const serial = await this.getData(T.CARD_SERIAL);
    if (!serial || serial.length !== 8) throw new CardMisbehavedError('GET DATA', 'answer', 'the card serial is not 8 bytes');
    this.info = { ...fci, serial: serial.slice(), serialHex: hex(serial) };
    return this.info;
  }

  /** The card's FCI and serial (`open`), selecting and reading them first if this terminal has not yet. */
  async cardInfo(): Promise<CardInfo> {
    return this.info ?? this.open();
  }

  /**
   * EXTERNAL AUTHENTICATE: GET CHALLENGE, the authoriser signs it, the card checks the signature with an authority
   * key it holds. Until SELECT or reset, GET DATA then answers the identifying objects.
   */
  async authenticate(): Promise<void> {
    const authorize = this.options.authorize;
    if (!authorize) throw new IssuerAuthorizationRequiredError('reading a locked card\'s identity needs an issuer authorisation (EXTERNAL AUTHENTICATE): give the issuing terminal an authoriser');
    const challenge = (await this.session.send('GET CHALLENGE', { ne: CHALLENGE_LENGTH })).data;
    if (challenge.length !== CHALLENGE_LENGTH) throw new CardMisbehavedError('GET CHALLENGE', 'answer', `a challenge of ${challenge.length} bytes`);
    await this.session.send('EXTERNAL AUTHENTICATE', { data: await authorize(challenge.slice()) });
  }

  /** NVM capacity, free bytes, tickets and tombstones on the card. */
  async capacity(): Promise<CardCapacity> {
    const d = await this.getData(T.CAPACITY);
    if (!d) throw new CardMisbehavedError('GET DATA', 'answer', 'the card has no capacity object');
    return decodeAnswer('GET DATA', () => decodeCapacity(d));
  }

  /**
   * GET DATA of one object, or undefined when the card does not hold it (6A88). An identifying object the card
   * refuses with 6982 (locked, not authenticated since its last SELECT) is asked again after EXTERNAL AUTHENTICATE.
   */
  async getData(tag: number): Promise<Uint8Array | undefined> {
    if (!this.fci) await this.select();
    const ask = () => this.session.send('GET DATA', { p2: tag, accept: [SW.REFERENCED_DATA_NOT_FOUND, SW.SECURITY_STATUS_NOT_SATISFIED] });
    let r = await ask();
    if (r.sw === SW.SECURITY_STATUS_NOT_SATISFIED && IDENTIFYING_OBJECTS.includes(tag)) {
      await this.authenticate();
      r = await ask();
    }
    if (r.sw === SW.SECURITY_STATUS_NOT_SATISFIED) throw new CardStatusError('GET DATA', r.sw, 'SECURITY_STATUS_NOT_SATISFIED', 'the card refused the object after EXTERNAL AUTHENTICATE');
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

  /** LOAD a first ciphertext (no authorisation needed). Card refusals (full, duplicate, not for this card, ...) throw CardStatusError. */
  async load(sealed: Uint8Array): Promise<LoadAnswer> {
    if (!this.fci) await this.select();
    const r = await this.session.send('LOAD', { data: sealed });
    return decodeAnswer('LOAD', () => decodeLoadAnswer(r.data));
  }
}

/** Whether `e` is the card refusing a LOAD because the ticket is already on it (ALREADY_EXISTS). */
export function isDuplicate(e: unknown): boolean {
  return e instanceof CardStatusError && e.sw === SW.ALREADY_EXISTS;
}
