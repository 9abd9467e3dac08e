// The ticket view B2 that READ and VERIFY answer with (inside the second ciphertext, or the sym session
// cryptogram): the card encodes it, terminals and the vector runner decode it, from this one module.

import { concat, u16 } from '../bytes.js';
import { decodeSequenceField, specField, type SequenceField } from '../fields.js';
import { T } from '../spec.js';
import { decodeTicketFace, decodeUsageRecordContent, decodeVerificationCodeContent, type TicketFace, type UsageRecord, type VerificationCode } from '../ticket.js';
import { TlvMap, template, tlv } from '../tlv.js';

export interface TicketViewParts {
  sequenceNumber: number;
  /** Encoded A1 (TF_A), exactly as the authority signed it. */
  face: Uint8Array;
  /** Encoded A3 (TF_B). */
  usage: Uint8Array;
  /** C4, echoed from the query (VERIFY always, READ when the query carried one). */
  terminalChallenge?: Uint8Array;
  /** C7, VERIFY only: the one-time challenge (pki) or the session's RC (sym). */
  cardChallenge?: Uint8Array;
  /** Encoded A2 (TF_V), when the VERIFY asked for it (audit). */
  verificationCode?: Uint8Array;
  cardSerial: Uint8Array;
}

/** B2 { C8, A1, A3, [C4], [C7], [A2], C6 } (apdu-spec README 3.2). */
export function encodeTicketView(v: TicketViewParts): Uint8Array {
  const optional = (tag: number, value?: Uint8Array) => (value ? tlv(tag, value) : new Uint8Array(0));
  return template(
    T.TICKET_VIEW,
    tlv(T.SEQUENCE_NUMBER, u16(v.sequenceNumber)),
    v.face,
    v.usage,
    concat(optional(T.TERMINAL_CHALLENGE, v.terminalChallenge), optional(T.CARD_CHALLENGE, v.cardChallenge), v.verificationCode ?? new Uint8Array(0)),
    tlv(T.CARD_SERIAL, v.cardSerial),
  );
}

export interface DecodedTicketView {
  sequenceNumber: number;
  face: TicketFace;
  faceEncoded: Uint8Array;
  usage: UsageRecord;
  cardSerial: Uint8Array;
  terminalChallenge?: Uint8Array;
  cardChallenge?: Uint8Array;
  /** Decoded, not checked: checking TF_V against the authority keys is the terminal's job. */
  verificationCode?: VerificationCode;
}

const SEQUENCE_NUMBER = specField('sequenceNumber', 'SEQUENCE_NUMBER');
const CARD_SERIAL = specField('cardSerial', 'CARD_SERIAL');
const TERMINAL_CHALLENGE = specField('terminalChallenge', 'TERMINAL_CHALLENGE');
const CARD_CHALLENGE = specField('cardChallenge', 'CARD_CHALLENGE');

/** Decode a B2 plaintext; throws TlvError when it is malformed. */
export function decodeTicketView(plain: Uint8Array): DecodedTicketView {
  const outer = TlvMap.parse(plain, { allowed: [T.TICKET_VIEW] });
  const m = TlvMap.parse(outer.require(T.TICKET_VIEW), {
    allowed: [T.SEQUENCE_NUMBER, T.TICKET_FACE, T.USAGE_RECORD, T.TERMINAL_CHALLENGE, T.CARD_CHALLENGE, T.VERIFICATION_CODE, T.CARD_SERIAL],
  });
  const faceEncoded = tlv(T.TICKET_FACE, m.require(T.TICKET_FACE, 'ticket face'));
  const optional = (f: SequenceField) => (m.has(f.tag) ? (decodeSequenceField(f, m.require(f.tag)) as Uint8Array) : undefined);
  const tfv = m.get(T.VERIFICATION_CODE);
  return {
    sequenceNumber: decodeSequenceField(SEQUENCE_NUMBER, m.require(T.SEQUENCE_NUMBER, 'sequence number')) as number,
    face: decodeTicketFace(faceEncoded),
    faceEncoded,
    usage: decodeUsageRecordContent(m.require(T.USAGE_RECORD, 'usage record')),
    cardSerial: decodeSequenceField(CARD_SERIAL, m.require(T.CARD_SERIAL, 'card serial')) as Uint8Array,
    terminalChallenge: optional(TERMINAL_CHALLENGE),
    cardChallenge: optional(CARD_CHALLENGE),
    verificationCode: tfv ? decodeVerificationCodeContent(tfv) : undefined,
  };
}
