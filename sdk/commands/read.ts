// READ (patent 621-622): the tickets for a date or later (and a train), one per command, sealed to the
// terminal key as the second ciphertext B1 holding a ticket view B2 (ticket-view.ts). P1 = first / next.

import { command, T } from '../spec.js';
import { decodeQuery, encodeQuery } from './query.js';

export const READ = command('READ');

/** P1: the first match, or the next one after the previous READ of the same query. */
export const READ_P1 = { FIRST: 0x00, NEXT: 0x01 } as const;

export interface ReadQuery {
  keyId: Uint8Array;
  terminalChallenge?: Uint8Array;
  /** That date (YYYYMMDD) or later. */
  date?: number;
  train?: string;
}

export function encodeReadQuery(q: ReadQuery): Uint8Array {
  return encodeQuery(q);
}

/** Card side: { C1, [C4], [C2], [C3] }; throws TlvError (6A80). */
export function decodeReadQuery(data: Uint8Array): ReadQuery {
  const { keyId, terminalChallenge, date, train } = decodeQuery(data, [T.KEY_ID, T.TERMINAL_CHALLENGE, T.SERVICE_DATE, T.TRAIN], false);
  return { keyId, terminalChallenge, date, train };
}
