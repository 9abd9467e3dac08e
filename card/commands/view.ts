// The ticket view B2 as READ and VERIFY show it (sdk/commands/ticket-view.ts), and the second ciphertext
// that seals it to a terminal key bundle (gate mode pki).

import { encodeTicketView, type TicketViewParts } from '../../sdk/commands/ticket-view.js';
import { decodeTerminalKey } from '../../sdk/crypto/bundle.js';
import { seal } from '../../sdk/crypto/envelope.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { encodeUsageRecord } from '../../sdk/ticket.js';
import type { CardState, KeyEntry, TicketRecord } from '../state.js';

export function viewOf(s: CardState, record: TicketRecord, extra: Pick<TicketViewParts, 'terminalChallenge' | 'cardChallenge' | 'verificationCode'>): Uint8Array {
  return encodeTicketView({ sequenceNumber: record.seq, face: record.face, usage: encodeUsageRecord(record.usage), ...extra, cardSerial: s.serial });
}

/** The second ciphertext: the view sealed to the terminal's encryption key, addressed to its key id. */
export function sealView(s: CardState, terminal: KeyEntry, view: Uint8Array): Uint8Array {
  return seal(suiteProvider(s.suite).suite, decodeTerminalKey(terminal.key).encryption, terminal.id, view);
}

/** Tickets in travel order: service date, departure, then load order. */
export function travelOrder(list: TicketRecord[]): TicketRecord[] {
  return [...list].sort((a, b) => a.serviceDate - b.serviceDate || a.departure - b.departure || a.seq - b.seq);
}
