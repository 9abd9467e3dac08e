// The gate decision: pure rules from a ticket face, its usage record, the gate's place and the time, and
// from what went wrong in a tap. The card enforces the usage state machine too; the gate decides first.

import { ApduFormatError } from '../sdk/apdu.js';
import { CardStatusError, CryptoError, RelayError, TicketNotFoundError, TransportError, WrongCardError } from '../sdk/errors.js';
import { SW, USAGE_STATE } from '../sdk/spec.js';
import { TlvError } from '../sdk/tlv.js';
import type { TicketFace, UsageRecord } from '../sdk/ticket.js';

/** Which way a gate lets passengers through. */
export type Direction = 'entry' | 'exit';

/** Why a gate refused a card; each has a message in REJECT_MESSAGES. */
export type RejectReason =
  | 'not_found'
  | 'not_yet_valid'
  | 'expired'
  | 'wrong_station'
  | 'already_inside'
  | 'already_exited'
  | 'not_entered'
  | 'void'
  | 'bad_signature'
  | 'relay'
  | 'wrong_card'
  | 'card_error'
  | 'denylisted'
  | 'journal_full';

/** A gate's answer: pass, or reject with its reason and a message for the passenger. */
export interface GateDecision {
  pass: boolean;
  reason?: RejectReason;
  message: string;
}

/** The passenger-facing message of each reject reason. */
export const REJECT_MESSAGES: Record<RejectReason, string> = {
  not_found: 'no ticket for this service on the card',
  not_yet_valid: 'ticket is not valid yet',
  expired: 'ticket has expired',
  wrong_station: 'ticket is not valid at this station',
  already_inside: 'ticket already used to enter',
  already_exited: 'ticket already used',
  not_entered: 'no entry recorded for this ticket',
  void: 'ticket was cancelled (void)',
  bad_signature: 'ticket or card failed a signature check',
  relay: 'the card did not vouch for the ticket the gate saw',
  wrong_card: 'the ticket was issued to another card',
  card_error: 'card error',
  denylisted: 'card is on the denylist: see staff',
  journal_full: 'gate out of service (its journal is full or failed): use another gate',
};

/** A REJECT decision with its message (and a detail appended). */
export function reject(reason: RejectReason, detail?: string): GateDecision {
  return { pass: false, reason, message: detail ? `${REJECT_MESSAGES[reason]}: ${detail}` : REJECT_MESSAGES[reason] };
}

/** The gate rules: validity window, station, and the usage state machine (entries allowed, inside, exited). */
export function decide(face: TicketFace, usage: UsageRecord, ctx: { direction: Direction; station: string; now: number }): GateDecision {
  if (ctx.now < face.validFrom) return reject('not_yet_valid');
  if (ctx.now > face.validUntil) return reject('expired');
  const maxEntries = face.maxEntries ?? 1;
  if (ctx.direction === 'entry') {
    if (face.origin && face.origin !== ctx.station) return reject('wrong_station', `valid from ${face.origin}`);
    if (usage.state === USAGE_STATE.INSIDE) return reject('already_inside');
    if (usage.state === USAGE_STATE.EXITED && usage.entries >= maxEntries) return reject('already_exited');
    return { pass: true, message: usage.state === USAGE_STATE.TEMPORARY_EXIT ? 'welcome back' : 'welcome' };
  }
  if (face.destination && face.destination !== ctx.station) return reject('wrong_station', `valid to ${face.destination}`);
  if (usage.state === USAGE_STATE.EXITED) return reject('already_exited');
  if (usage.state !== USAGE_STATE.INSIDE) return reject('not_entered');
  return { pass: true, message: 'goodbye' };
}

/**
 * The decision for a tap that failed: no ticket or a void one (the view says so) keeps that reason; a command the
 * card refused as not answering what it showed (9107), or a receipt for another face, is relay; a face bound to
 * another card is wrong_card; a failed signature or MAC is bad_signature; anything else the card or the reader
 * did (a refusal, a malformed answer, bounds or deadline exceeded, the card pulled) is card_error. Anything else
 * is a programming error and propagates.
 */
export function rejectFor(e: unknown): GateDecision {
  if (e instanceof TicketNotFoundError) return reject(e.status === 'void' ? 'void' : 'not_found');
  if (e instanceof CardStatusError) {
    if (e.sw === SW.VIEW_MISMATCH) return reject('relay', `${e.command} 9107 ${e.swName}`);
    return reject('card_error', `${e.command} ${e.sw.toString(16).toUpperCase()} ${e.swName}`);
  }
  if (e instanceof RelayError) return reject('relay', e.message);
  if (e instanceof WrongCardError) return reject('wrong_card', e.message);
  if (e instanceof CryptoError) return reject('bad_signature', e.message);
  if (e instanceof TransportError) return reject('card_error', e.message);
  // Decoders wrap malformed answers (CardMisbehavedError, a TransportError); these two are the backstop.
  if (e instanceof TlvError || e instanceof ApduFormatError) return reject('card_error', e.message);
  throw e;
}
