// LOAD (patent 611-614): the first ciphertext, a sealed envelope B1 holding TF_A then TF_V, addressed to one
// card; the card answers the sequence number and TID of the ticket it stored.

import { concat, u16, utf8 } from '../bytes.js';
import { decodeSequenceField, specField } from '../fields.js';
import { command, T } from '../spec.js';
import { decodeTicketFace, decodeVerificationCodeContent, type TicketFace, type VerificationCode } from '../ticket.js';
import { TlvError, TlvMap, tlv } from '../tlv.js';

export const LOAD = command('LOAD');

/** The plaintext of a first ciphertext: encoded A1 then encoded A2, nothing else. */
export function encodeLoadPayload(faceEncoded: Uint8Array, verificationCodeEncoded: Uint8Array): Uint8Array {
  return concat(faceEncoded, verificationCodeEncoded);
}

export interface LoadPayload {
  face: TicketFace;
  /** A1 and A2 exactly as signed and sealed: the card stores these bytes. */
  faceEncoded: Uint8Array;
  verificationCodeEncoded: Uint8Array;
  verificationCode: VerificationCode;
}

/** Card side: exactly TF_A then TF_V (its A4, if any, kept as encoded: the card checks it with the key chain); throws TlvError (6A80). */
export function decodeLoadPayload(plaintext: Uint8Array): LoadPayload {
  const m = TlvMap.parse(plaintext, { allowed: [T.TICKET_FACE, T.VERIFICATION_CODE] });
  if (m.items.length !== 2 || m.items[0].tag !== T.TICKET_FACE) throw new TlvError('payload must be TF_A then TF_V');
  const faceEncoded = tlv(T.TICKET_FACE, m.require(T.TICKET_FACE));
  const verificationCode = decodeVerificationCodeContent(m.require(T.VERIFICATION_CODE));
  return { face: decodeTicketFace(faceEncoded), faceEncoded, verificationCodeEncoded: tlv(T.VERIFICATION_CODE, m.require(T.VERIFICATION_CODE)), verificationCode };
}

export interface LoadAnswer {
  sequenceNumber: number;
  tid: string;
}

const SEQUENCE_NUMBER = specField('sequenceNumber', 'SEQUENCE_NUMBER');
const TID = specField('tid', 'TID');

/** { C8 sequence number, C5 TID } of the stored ticket. */
export function encodeLoadAnswer(a: LoadAnswer): Uint8Array {
  return concat(tlv(T.SEQUENCE_NUMBER, u16(a.sequenceNumber)), tlv(T.TID, utf8(a.tid)));
}

export function decodeLoadAnswer(data: Uint8Array): LoadAnswer {
  const m = TlvMap.parse(data, { allowed: [T.SEQUENCE_NUMBER, T.TID] });
  return {
    sequenceNumber: decodeSequenceField(SEQUENCE_NUMBER, m.require(T.SEQUENCE_NUMBER, 'sequence number')) as number,
    tid: decodeSequenceField(TID, m.require(T.TID, 'TID')) as string,
  };
}
