// The gate decision: pure rules from a ticket face, its usage record, the gate's place and the time.
// The card enforces the usage state machine too; the gate decides first so a refusal is explained.

import { USAGE_STATE } from '../sdk/spec.js';
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
  | 'card_error';

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
  card_error: 'card error',
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
