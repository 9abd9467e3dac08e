// The card's usage state machine (apdu-spec usageEvents): which event each state allows and the TF_B it
// leads to. Pure, so a table test can walk every event in every state; the card is the gate's backstop.

import { USAGE_EVENT, USAGE_STATE } from '../../sdk/spec.js';
import { USAGE_FLAG, type UsageRecord } from '../../sdk/ticket.js';

/** TF_B counts entries and temporary exits in one byte each. */
export const MAX_COUNT = 255;

export interface UsageEventAt {
  event: number;
  gate: string;
  station: string;
  /** Epoch seconds, the terminal's clock. */
  time: number;
}

/**
 * The TF_B after `e`, or undefined when the ticket's state does not allow it (the card answers 6985).
 * `maxEntries` is the face's (default 1): how often the ticket may enter after a final exit.
 */
export function nextUsage(u: UsageRecord, maxEntries: number, e: UsageEventAt): UsageRecord | undefined {
  switch (e.event) {
    case USAGE_EVENT.ENTRY:
      if (u.state === USAGE_STATE.TEMPORARY_EXIT) return after(u, e, USAGE_STATE.INSIDE, u.entries, u.temporaryExits, u.flags);
      if ((u.state === USAGE_STATE.NEW || u.state === USAGE_STATE.EXITED) && u.entries < maxEntries && u.entries < MAX_COUNT) {
        return after(u, e, USAGE_STATE.INSIDE, u.entries + 1, u.temporaryExits, u.flags);
      }
      return undefined;
    case USAGE_EVENT.TEMPORARY_EXIT:
      if (u.state !== USAGE_STATE.INSIDE || u.temporaryExits >= MAX_COUNT) return undefined;
      return after(u, e, USAGE_STATE.TEMPORARY_EXIT, u.entries, u.temporaryExits + 1, u.flags);
    case USAGE_EVENT.EXIT:
      return u.state === USAGE_STATE.INSIDE ? after(u, e, USAGE_STATE.EXITED, u.entries, u.temporaryExits, u.flags) : undefined;
    case USAGE_EVENT.PUNCH:
      return after(u, e, u.state, u.entries, u.temporaryExits, u.flags | USAGE_FLAG.PUNCHED);
    case USAGE_EVENT.PAPER_PRINTED:
      return after(u, e, u.state, u.entries, u.temporaryExits, u.flags | USAGE_FLAG.PAPER_PRINTED);
    default:
      return undefined;
  }
}

/**
 * The record after event `e`: one literal with every field of A3 named (sdk/ticket.ts checks the spec has exactly
 * these), the last gate, station and time the event's, the counter one more. Was two spreads a tap.
 */
function after(u: UsageRecord, e: UsageEventAt, state: number, entries: number, temporaryExits: number, flags: number): UsageRecord {
  return { entries, temporaryExits, state, flags, lastGate: e.gate, lastStation: e.station, lastTime: e.time, counter: u.counter + 1 };
}
