// The ticket view B2 as READ and VERIFY show it (sdk/commands/ticket-view.ts), padded to its fixed length so
// that found, not found and void answers look alike, and the second ciphertext that seals it to a terminal.

import { encodeTicketView, VIEW_STATUS, viewLengthFor, type TicketViewParts } from '../../sdk/commands/ticket-view.js';
import { seal } from '../../sdk/crypto/envelope.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { encodedUsage, type CardState, type KeyEntry, type TicketRecord } from '../state.js';
import { terminalPublicKey } from './keys.js';

export interface ViewRequest {
  terminalChallenge?: Uint8Array;
  cardChallenge?: Uint8Array;
  /** VERIFY P1 bit 0: the slot for TF_V is added whatever is found. */
  verificationCode?: boolean;
  /** VERIFY P1 bit 2: the card's D6 (if it has one) in every answer. */
  signingCertificate?: boolean;
}

/** The view of `record` (status SHOWN), or of nothing (NOT_FOUND / VOID), at the request's fixed length. */
export function viewOf(s: CardState, record: TicketRecord | undefined, status: number, r: ViewRequest): Uint8Array {
  const cert = r.signingCertificate ? s.signCert : undefined;
  const parts: TicketViewParts = {
    status: record ? VIEW_STATUS.SHOWN : status,
    ticket: record ? { sequenceNumber: record.seq, face: record.face, usage: encodedUsage(record.usage) } : undefined,
    terminalChallenge: r.terminalChallenge,
    cardChallenge: r.cardChallenge,
    verificationCode: record && r.verificationCode ? record.tfv : undefined,
    signingCertificate: cert,
    cardSerial: s.serial,
  };
  return encodeTicketView(parts, viewLengthFor({ verificationCode: !!r.verificationCode, signingCertificate: cert }));
}

/** The second ciphertext: the view sealed to the terminal's encryption key, addressed to its key id. */
export function sealView(s: CardState, terminal: KeyEntry, view: Uint8Array): Uint8Array {
  return seal(suiteProvider(s.suite).suite, terminalPublicKey(terminal).encryption, terminal.id, view);
}

/** Tickets in travel order: service date, departure, then load order. */
export function travelOrder(list: TicketRecord[]): TicketRecord[] {
  return [...list].sort((a, b) => a.serviceDate - b.serviceDate || a.departure - b.departure || a.seq - b.seq);
}
