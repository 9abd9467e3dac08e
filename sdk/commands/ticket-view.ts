// The ticket view B2 that READ and VERIFY answer with (inside the second ciphertext, or the sym session
// cryptogram): the card encodes it padded to a fixed length, terminals and the vector runner decode it, here.

import { concat } from '../bytes.js';
import { decodeSequenceField, specField, type SequenceField } from '../fields.js';
import { LIMITS, T } from '../spec.js';
import { decodeTicketFace, decodeUsageRecordContent, decodeVerificationCodeContent, type TicketFace, type UsageRecord, type VerificationCode } from '../ticket.js';
import { decodeOne, putHeader, putTlv, TlvError, tlv, tlvSize } from '../tlv.js';

/** DF22: what the view shows. A keyless reader sees the same length whatever it is; only the terminal reads it. */
export const VIEW_STATUS = { SHOWN: 0x00, NOT_FOUND: 0x01, VOID: 0x02 } as const;
export type ViewStatus = 'shown' | 'not_found' | 'void';

const STATUS_NAMES: Record<number, ViewStatus> = { [VIEW_STATUS.SHOWN]: 'shown', [VIEW_STATUS.NOT_FOUND]: 'not_found', [VIEW_STATUS.VOID]: 'void' };

export interface TicketViewParts {
  /** DF22 (VIEW_STATUS). */
  status: number;
  /** The ticket, when the status is SHOWN: C8, encoded A1 exactly as signed, encoded A3. */
  ticket?: { sequenceNumber: number; face: Uint8Array; usage: Uint8Array };
  /** C4, echoed from the query (VERIFY always, READ when the query carried one). */
  terminalChallenge?: Uint8Array;
  /** C7, VERIFY only: the one-time challenge (pki) or the session's RC (sym). */
  cardChallenge?: Uint8Array;
  /** Encoded A2 (TF_V), when the VERIFY asked for it (audit) and a ticket is shown. */
  verificationCode?: Uint8Array;
  /** Value of D6, the card's signing certificate, when the VERIFY asked for it (P1 bit 2). */
  signingCertificate?: Uint8Array;
  cardSerial: Uint8Array;
}

/**
 * The fixed encoded length of a view for a request: limits.viewLength, plus the TF_V slot when TF_V was asked,
 * plus the D6 object when the certificate was asked. Found, not found and void views of one request all have it.
 */
export function viewLengthFor(request: { verificationCode: boolean; signingCertificate?: Uint8Array }): number {
  return LIMITS.viewLength + (request.verificationCode ? LIMITS.verificationCodeSlot : 0) + (request.signingCertificate ? tlv(T.CARD_SIGNING_CERTIFICATE, request.signingCertificate).length : 0);
}

/** Encoded size of one DF23 object of `n` zero bytes (two-byte tag, minimal length). */
function paddingSize(n: number): number {
  return tlvSize(T.PADDING, n);
}

/**
 * DF23 object(s) of exactly `room` bytes. One object, except for a room of 131 or 260 bytes, which no single
 * minimal length encoding reaches (130 → 132, 259 → 261): then an empty DF23 first, and one of the rest.
 */
const PADDING_FORMS = [[3, 0, 127], [4, 128, 255], [5, 256, 65535]] as const;

export function padding(room: number): Uint8Array {
  for (const [headerBytes, lo, hi] of PADDING_FORMS) {
    const n = room - headerBytes;
    if (n >= lo && n <= hi) return tlv(T.PADDING, new Uint8Array(n));
  }
  const empty = tlv(T.PADDING, new Uint8Array(0));
  if (room > empty.length) return concat(empty, padding(room - empty.length));
  throw new RangeError(`no padding fills ${room} bytes`);
}

/**
 * B2 { DF22, [C8, A1, A3], [C4], [C7], [A2], [D6], C6, DF23 } padded to exactly `length` bytes (apdu-spec README 3.2).
 * Throws RangeError when the content does not fit: the card's limits (LOAD's TF_V bound) make that unreachable.
 * Sized first and written into one zeroed buffer (every VERIFY encodes one): DF23's value is that buffer's zeros.
 */
export function encodeTicketView(v: TicketViewParts, length: number): Uint8Array {
  const optionalSize = (tag: number, value?: Uint8Array) => (value ? tlvSize(tag, value.length) : 0);
  const contentLength =
    tlvSize(T.VIEW_STATUS, 1) +
    (v.ticket ? tlvSize(T.SEQUENCE_NUMBER, 2) + v.ticket.face.length + v.ticket.usage.length : 0) +
    optionalSize(T.TERMINAL_CHALLENGE, v.terminalChallenge) +
    optionalSize(T.CARD_CHALLENGE, v.cardChallenge) +
    (v.verificationCode?.length ?? 0) +
    optionalSize(T.CARD_SIGNING_CERTIFICATE, v.signingCertificate) +
    tlvSize(T.CARD_SERIAL, v.cardSerial.length);
  // Views are at least limits.viewLength (over 259 bytes): the B2 length is always the 3-byte form 82 LL LL.
  const body = length - 4;
  if (body < 256 || body > 0xffff) throw new RangeError(`a view of ${length} bytes is outside the fixed-length range`);
  const room = body - contentLength;
  if (room < paddingSize(0)) throw new RangeError(`ticket view of ${contentLength + 4} bytes does not fit ${length}`);
  const out = new Uint8Array(length);
  let o = putHeader(out, 0, T.TICKET_VIEW, body);
  if (o !== 4) throw new RangeError(`ticket view header of ${o} bytes, not 4`);
  out[putHeader(out, o, T.VIEW_STATUS, 1)] = v.status;
  o += tlvSize(T.VIEW_STATUS, 1);
  if (v.ticket) {
    o = putHeader(out, o, T.SEQUENCE_NUMBER, 2);
    out[o++] = (v.ticket.sequenceNumber >>> 8) & 0xff;
    out[o++] = v.ticket.sequenceNumber & 0xff;
    out.set(v.ticket.face, o);
    o += v.ticket.face.length;
    out.set(v.ticket.usage, o);
    o += v.ticket.usage.length;
  }
  if (v.terminalChallenge) o = putTlv(out, o, T.TERMINAL_CHALLENGE, v.terminalChallenge);
  if (v.cardChallenge) o = putTlv(out, o, T.CARD_CHALLENGE, v.cardChallenge);
  if (v.verificationCode) {
    out.set(v.verificationCode, o);
    o += v.verificationCode.length;
  }
  if (v.signingCertificate) o = putTlv(out, o, T.CARD_SIGNING_CERTIFICATE, v.signingCertificate);
  o = putTlv(out, o, T.CARD_SERIAL, v.cardSerial);
  o = putPadding(out, o, room);
  if (o !== length) throw new RangeError(`ticket view encoded to ${o} bytes, not ${length}`);
  return out;
}

/** padding(room) written in place: the DF23 header(s) at `o` (the value's zeros are already there); the offset after. */
function putPadding(out: Uint8Array, o: number, room: number): number {
  for (const [headerBytes, lo, hi] of PADDING_FORMS) {
    const n = room - headerBytes;
    if (n >= lo && n <= hi) return putHeader(out, o, T.PADDING, n) + n;
  }
  const empty = paddingSize(0);
  if (room > empty) return putPadding(out, putHeader(out, o, T.PADDING, 0), room - empty);
  throw new RangeError(`no padding fills ${room} bytes`);
}

export interface DecodedTicketView {
  status: ViewStatus;
  /** Present when status is 'shown'. */
  sequenceNumber?: number;
  face?: TicketFace;
  faceEncoded?: Uint8Array;
  usage?: UsageRecord;
  cardSerial: Uint8Array;
  terminalChallenge?: Uint8Array;
  cardChallenge?: Uint8Array;
  /** Decoded, not checked: checking TF_V against the authority keys is the terminal's job. */
  verificationCode?: VerificationCode;
  /** D6, the card's signing certificate (VERIFY P1 bit 2). */
  signingCertificate?: Uint8Array;
  /** The whole B2 as encoded (tag, length, padding): its SHA-256 is the DF21 a pki command carries. */
  encoded: Uint8Array;
}

const STATUS = specField('status', 'VIEW_STATUS');
const SEQUENCE_NUMBER = specField('sequenceNumber', 'SEQUENCE_NUMBER');
const CARD_SERIAL = specField('cardSerial', 'CARD_SERIAL');
const TERMINAL_CHALLENGE = specField('terminalChallenge', 'TERMINAL_CHALLENGE');
const CARD_CHALLENGE = specField('cardChallenge', 'CARD_CHALLENGE');
const SIGNING_CERTIFICATE = specField('signingCertificate', 'CARD_SIGNING_CERTIFICATE');

/** The fields of B2 in the only order allowed; DF23 closes it (once, or twice with an empty one first). */
const ORDER = [T.VIEW_STATUS, T.SEQUENCE_NUMBER, T.TICKET_FACE, T.USAGE_RECORD, T.TERMINAL_CHALLENGE, T.CARD_CHALLENGE, T.VERIFICATION_CODE, T.CARD_SIGNING_CERTIFICATE, T.CARD_SERIAL];

/**
 * Decode a B2 plaintext strictly; throws TlvError when it is malformed. `decodeFace` decodes the A1 (a terminal
 * may pass one that remembers faces it already decoded: a face is a pure function of its bytes).
 */
export function decodeTicketView(plain: Uint8Array, decodeFace: (encoded: Uint8Array) => TicketFace = decodeTicketFace): DecodedTicketView {
  const { tlv: outer, next } = decodeOne(plain, 0);
  if (outer.tag !== T.TICKET_VIEW || next !== plain.length) throw new TlvError('ticket view: not exactly one B2');
  const fields = new Map<number, Uint8Array>();
  const paddings: Uint8Array[] = [];
  let last = -1;
  for (let o = 0; o < outer.value.length; ) {
    const { tlv: item, next: n } = decodeOne(outer.value, o);
    o = n;
    if (item.tag === T.PADDING) {
      paddings.push(item.value);
      continue;
    }
    if (paddings.length) throw new TlvError('ticket view: padding (DF23) must come last');
    const i = ORDER.indexOf(item.tag);
    if (i < 0) throw new TlvError(`ticket view: unexpected tag ${item.tag.toString(16).toUpperCase()}`);
    if (i <= last) throw new TlvError('ticket view: fields duplicated or out of order');
    last = i;
    fields.set(item.tag, item.value);
  }
  if (paddings.length < 1 || paddings.length > 2 || (paddings.length === 2 && paddings[0].length !== 0)) throw new TlvError('ticket view: one DF23, or an empty one and one more');
  if (paddings.some((p) => p.some((b) => b !== 0))) throw new TlvError('ticket view: padding must be zero bytes');
  const need = (tag: number, what: string): Uint8Array => {
    const v = fields.get(tag);
    if (!v) throw new TlvError(`ticket view: missing ${what}`);
    return v;
  };
  const status = STATUS_NAMES[decodeSequenceField(STATUS, need(T.VIEW_STATUS, 'view status')) as number];
  if (!status) throw new TlvError('ticket view: unknown view status');
  const optional = (f: SequenceField) => (fields.has(f.tag) ? (decodeSequenceField(f, fields.get(f.tag)!) as Uint8Array) : undefined);
  const shown = status === 'shown';
  for (const tag of [T.SEQUENCE_NUMBER, T.TICKET_FACE, T.USAGE_RECORD]) {
    if (fields.has(tag) !== shown) throw new TlvError(`ticket view: a ${status} view ${shown ? 'lacks' : 'carries'} a ticket`);
  }
  if (!shown && fields.has(T.VERIFICATION_CODE)) throw new TlvError('ticket view: TF_V without a ticket');
  const tfv = fields.get(T.VERIFICATION_CODE);
  const faceEncoded = shown ? tlv(T.TICKET_FACE, fields.get(T.TICKET_FACE)!) : undefined;
  return {
    status,
    ...(shown
      ? {
          sequenceNumber: decodeSequenceField(SEQUENCE_NUMBER, fields.get(T.SEQUENCE_NUMBER)!) as number,
          face: decodeFace(faceEncoded!),
          faceEncoded,
          usage: decodeUsageRecordContent(fields.get(T.USAGE_RECORD)!),
        }
      : {}),
    cardSerial: decodeSequenceField(CARD_SERIAL, need(T.CARD_SERIAL, 'card serial')) as Uint8Array,
    terminalChallenge: optional(TERMINAL_CHALLENGE),
    cardChallenge: optional(CARD_CHALLENGE),
    verificationCode: tfv ? decodeVerificationCodeContent(tfv) : undefined,
    signingCertificate: optional(SIGNING_CERTIFICATE),
    encoded: plain,
  };
}
