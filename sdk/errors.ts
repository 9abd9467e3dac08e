// Typed errors shared by every layer. Each carries enough to act on without parsing a message:
// the command that failed and its status word for card refusals, the reader for transport faults.

/** Base class of every error the SDK throws on purpose. */
export class EticketError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Invalid argument or malformed data given to an SDK function (never a card answer). */
export class InvalidInputError extends EticketError {}

/** A cryptographic check failed on the host side (bad signature, bad MAC, untrusted key). */
export class CryptoError extends EticketError {}

/** Something went wrong between the host and the card: reader, driver, cable, radio field. */
export class TransportError extends EticketError {
  constructor(message: string, readonly reader?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The PC/SC binding (npm pcsclite) is not installed or failed to build. */
export class TransportUnavailableError extends TransportError {}

/** No reader by that name, or no reader at all. */
export class ReaderNotFoundError extends TransportError {}

/** The card left the field / was pulled / its bridge disconnected during an exchange. */
export class CardRemovedError extends TransportError {}

/** The card or reader did not answer within the configured time. */
export class TransportTimeoutError extends TransportError {}

/** The card answered a command with a status word other than success. */
export class CardStatusError extends EticketError {
  constructor(
    /** Name of the command as in apdu-spec, e.g. "WRITE USAGE". */
    readonly command: string,
    /** Status word, e.g. 0x6982. */
    readonly sw: number,
    /** Name of the status word as in apdu-spec, e.g. "SECURITY_STATUS_NOT_SATISFIED". */
    readonly swName: string,
    readonly description: string,
  ) {
    super(`${command} refused by card: ${sw.toString(16).toUpperCase().padStart(4, '0')} ${swName} (${description})`);
  }
}

/** What a misbehaving card did: too many GET RESPONSE rounds, too many bytes, too slow, or an answer that does not decode. */
export type Misbehaviour = 'getResponseRounds' | 'responseBytes' | 'deadline' | 'responseApdu' | 'answer';

/**
 * The card broke the protocol rather than refusing a command: it kept answering 61XX, sent more than a
 * response may hold, overran the command's deadline, or gave an answer that does not decode. The host
 * stops talking to it: nothing a card sends can make the host loop, wait or crash.
 */
export class CardMisbehavedError extends TransportError {
  constructor(
    /** Name of the command as in apdu-spec, e.g. "WRITE USAGE". */
    readonly command: string,
    readonly misbehaviour: Misbehaviour,
    detail: string,
    reader?: string,
    options?: { cause?: unknown },
  ) {
    super(`${command}: the card misbehaved (${misbehaviour}): ${detail}`, reader, options);
  }
}

/**
 * READ or VERIFY found no ticket: the card's view says no match (DF22 01) or that the ticket was deleted (02,
 * void). The card answers 9000 either way, so a keyless reader cannot tell; only the terminal that opens the view can.
 */
export class TicketNotFoundError extends EticketError {
  constructor(
    /** Name of the command as in apdu-spec, e.g. "VERIFY". */
    readonly command: string,
    readonly status: 'not_found' | 'void',
  ) {
    super(status === 'void' ? `${command}: the ticket was deleted from this card (void)` : `${command}: no such ticket on this card`);
  }
}

/**
 * The card did not vouch for what the terminal saw: it refused a command as not answering the view it showed
 * (9107, or no view pending with that challenge after the terminal's own VERIFY), or its receipt names another
 * face. A device between terminal and card substituted an answer.
 */
export class RelayError extends CryptoError {}

/** The ticket face names another card than the one that showed it (protocol version 2 binds a ticket to one card). */
export class WrongCardError extends CryptoError {}

/** Reading the card's identity (GET DATA of its serial, keys, certificates) needs an issuer authorisation first. */
export class IssuerAuthorizationRequiredError extends InvalidInputError {}
