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
  const next: UsageRecord = { ...u, lastGate: e.gate, lastStation: e.station, lastTime: e.time, counter: u.counter + 1 };
  switch (e.event) {
    case USAGE_EVENT.ENTRY:
      if (u.state === USAGE_STATE.TEMPORARY_EXIT) return { ...next, state: USAGE_STATE.INSIDE };
      if ((u.state === USAGE_STATE.NEW || u.state === USAGE_STATE.EXITED) && u.entries < maxEntries && u.entries < MAX_COUNT) {
        return { ...next, state: USAGE_STATE.INSIDE, entries: u.entries + 1 };
      }
      return undefined;
    case USAGE_EVENT.TEMPORARY_EXIT:
      if (u.state !== USAGE_STATE.INSIDE || u.temporaryExits >= MAX_COUNT) return undefined;
      return { ...next, state: USAGE_STATE.TEMPORARY_EXIT, temporaryExits: u.temporaryExits + 1 };
    case USAGE_EVENT.EXIT:
      return u.state === USAGE_STATE.INSIDE ? { ...next, state: USAGE_STATE.EXITED } : undefined;
    case USAGE_EVENT.PUNCH:
      return { ...next, flags: u.flags | USAGE_FLAG.PUNCHED };
    case USAGE_EVENT.PAPER_PRINTED:
      return { ...next, flags: u.flags | USAGE_FLAG.PAPER_PRINTED };
    default:
      return undefined;
  }
}
