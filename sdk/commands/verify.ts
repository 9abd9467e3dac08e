// VERIFY (patent 631-635): the ticket matching a TID, or a date with train and station, with a fresh card
// challenge. Gate mode pki answers the second ciphertext B1 around a view B2; sym answers B5 (README 3.5).
// Found, not found and void answer alike (9000, one length); only the terminal reads which (DF22).

import { concat } from '../bytes.js';
import { checkSessionMac, sessionMac, SYM_CONTEXT, SYM_MAC_LENGTH } from '../crypto/symmetric.js';
import { decodeSequence, specField } from '../fields.js';
import { command, T } from '../spec.js';
import { putHeader, putTlv, TlvError, TlvMap, template, tlv, tlvSize } from '../tlv.js';
import { decodeQuery, encodeQuery } from './query.js';

export const VERIFY = command('VERIFY');

/**
 * P1 bits: 01 adds TF_V to the view (audit); 02 is gate mode sym (C1 names a master key, the answer is B5);
 * 04 (pki only) adds D6, the card's signing certificate, so a gate learns the receipt key without GET DATA.
 */
export const VERIFY_P1 = { AUDIT: 0x01, SYM: 0x02, CERTIFICATE: 0x04 } as const;

export function verifyP1(mode: 'pki' | 'sym', audit: boolean, certificate = false): number {
  if (mode === 'sym' && certificate) throw new TlvError('VERIFY P1 bit 2 (the card certificate) is for gate mode pki');
  return (mode === 'sym' ? VERIFY_P1.SYM : 0) | (audit ? VERIFY_P1.AUDIT : 0) | (certificate ? VERIFY_P1.CERTIFICATE : 0);
}

export type VerifyCriteria = { tid: string } | { date: number; train?: string; station?: string };

export interface VerifyQuery {
  keyId: Uint8Array;
  terminalChallenge: Uint8Array;
  criteria: VerifyCriteria;
}

export function encodeVerifyQuery(q: VerifyQuery): Uint8Array {
  return encodeQuery({ keyId: q.keyId, terminalChallenge: q.terminalChallenge, ...q.criteria });
}

/** Card side: { C1, C4, then C5 alone, or C2 with optional C3 and CD }; throws TlvError (6A80). */
export function decodeVerifyQuery(data: Uint8Array): VerifyQuery {
  const q = decodeQuery(data, [T.KEY_ID, T.TERMINAL_CHALLENGE, T.TID, T.SERVICE_DATE, T.TRAIN, T.STATION], true);
  if ((q.tid === undefined) === (q.date === undefined)) throw new TlvError('VERIFY needs a TID, or a date');
  if (q.tid !== undefined && (q.train !== undefined || q.station !== undefined)) throw new TlvError('TID excludes other criteria');
  const criteria: VerifyCriteria = q.tid !== undefined ? { tid: q.tid } : { date: q.date!, train: q.train, station: q.station };
  return { keyId: q.keyId, terminalChallenge: q.terminalChallenge!, criteria };
}

/** Gate mode sym: the VERIFY answer B5 { DF24 masked serial, C7 RC, 85 view cryptogram, 8E MAC_VIEW }. */
export interface SessionView {
  /** AES-128-ECB_{K_priv}(serial ‖ RC): the gate unmasks it with K_priv; nobody else learns the serial. */
  maskedSerial: Uint8Array;
  cardChallenge: Uint8Array;
  cryptogram: Uint8Array;
  mac: Uint8Array;
  /** DF24 ‖ C7 ‖ 85 as sent: what MAC_VIEW covers. */
  head: Uint8Array;
}

const SESSION_VIEW_FIELDS = [
  specField('maskedSerial', 'MASKED_SERIAL'),
  specField('cardChallenge', 'CARD_CHALLENGE'),
  specField('cryptogram', 'SESSION_CRYPTOGRAM'),
  specField('mac', 'MAC'),
] as const;

/** H = DF24 ‖ C7 ‖ 85, the part of B5 its MAC covers. */
export function sessionViewHead(maskedSerial: Uint8Array, cardChallenge: Uint8Array, cryptogram: Uint8Array): Uint8Array {
  return concat(tlv(T.MASKED_SERIAL, maskedSerial), tlv(T.CARD_CHALLENGE, cardChallenge), tlv(T.SESSION_CRYPTOGRAM, cryptogram));
}

/** MAC_VIEW(empty, H): the first MAC of the session, on which the command MAC chains. */
export function sessionViewMac(macKey: Uint8Array, head: Uint8Array): Uint8Array {
  return sessionMac(macKey, SYM_CONTEXT.VIEW, new Uint8Array(0), head);
}

export function checkSessionViewMac(macKey: Uint8Array, mac: Uint8Array, head: Uint8Array): boolean {
  return checkSessionMac(macKey, mac, SYM_CONTEXT.VIEW, new Uint8Array(0), head);
}

export function encodeSessionView(head: Uint8Array, mac: Uint8Array): Uint8Array {
  return template(T.SESSION_VIEW, head, tlv(T.MAC, mac));
}

/**
 * The card's B5 in one buffer: H written in place, `macOf(H)` (MAC_VIEW) computed over it and appended. The same
 * bytes as encodeSessionView(sessionViewHead(...), mac); returns the MAC too (the session chains on it).
 */
export function buildSessionView(maskedSerial: Uint8Array, cardChallenge: Uint8Array, cryptogram: Uint8Array, macOf: (head: Uint8Array) => Uint8Array): { encoded: Uint8Array; mac: Uint8Array } {
  const headLength = tlvSize(T.MASKED_SERIAL, maskedSerial.length) + tlvSize(T.CARD_CHALLENGE, cardChallenge.length) + tlvSize(T.SESSION_CRYPTOGRAM, cryptogram.length);
  const contentLength = headLength + tlvSize(T.MAC, SYM_MAC_LENGTH);
  const out = new Uint8Array(tlvSize(T.SESSION_VIEW, contentLength));
  const start = putHeader(out, 0, T.SESSION_VIEW, contentLength);
  let o = putTlv(out, start, T.MASKED_SERIAL, maskedSerial);
  o = putTlv(out, o, T.CARD_CHALLENGE, cardChallenge);
  o = putTlv(out, o, T.SESSION_CRYPTOGRAM, cryptogram);
  const mac = macOf(out.subarray(start, o));
  if (mac.length !== SYM_MAC_LENGTH) throw new RangeError(`a session MAC of ${mac.length} bytes, not ${SYM_MAC_LENGTH}`);
  o = putTlv(out, o, T.MAC, mac);
  if (o !== out.length) throw new RangeError(`session view encoded to ${o} bytes, not ${out.length}`);
  return { encoded: out, mac };
}

/** Terminal side: B5 with exactly its four fields in order; throws TlvError when malformed. */
export function decodeSessionView(data: Uint8Array): SessionView {
  const content = TlvMap.parse(data, { allowed: [T.SESSION_VIEW] }).require(T.SESSION_VIEW);
  const { values, ends } = decodeSequence(SESSION_VIEW_FIELDS, content, 'sym VERIFY answer B5');
  return {
    maskedSerial: values.maskedSerial as Uint8Array,
    cardChallenge: values.cardChallenge as Uint8Array,
    cryptogram: values.cryptogram as Uint8Array,
    mac: values.mac as Uint8Array,
    head: content.subarray(0, ends[2]),
  };
}
