// The ticket formats of the patent: ticket face TF_A, verification code TF_V, usage record TF_B.
// Field tables come from apdu-spec; these are their typed views and canonical encodings.

import { concat, utf8 } from './bytes.js';
import { RecordCodec } from './fields.js';
import { protocol, T, TFV_FIELD, USAGE_STATE } from './spec.js';
import { TlvMap, template, tlv, TlvError } from './tlv.js';

/** TF_A (票面信息): what the passenger bought. Times are epoch seconds, dates YYYYMMDD. */
export interface TicketFace {
  [k: string]: string | number | Uint8Array | undefined;
  version: number;
  operator: string;
  tid: string;
  serviceDate: number;
  train?: string;
  origin?: string;
  destination?: string;
  departure?: number;
  coach?: string;
  seat?: string;
  travelClass?: string;
  fare?: number;
  currency?: string;
  validFrom: number;
  validUntil: number;
  passenger?: string;
  issuedAt: number;
  flags?: number;
  kind?: number;
  maxEntries?: number;
  /** Real-name tickets (95): opaque random reference to the holder record in the back office. */
  holderRef?: Uint8Array;
  /** Real-name tickets (96): salted binding digest of the holder record to this operator and TID (sdk/roles/realname.ts). */
  holderBinding?: Uint8Array;
}

/** TF_B (使用信息): what happened to the ticket at gates. */
export interface UsageRecord {
  [k: string]: string | number | undefined;
  entries: number;
  temporaryExits: number;
  state: number;
  flags: number;
  lastGate: string;
  lastStation: string;
  lastTime: number;
  counter: number;
}

/** TF_V (驗證碼): the authority's signature over TF_A. */
export interface VerificationCode {
  suite: number;
  authorityKeyId: Uint8Array;
  signature: Uint8Array;
}

/** Bits of a ticket face's `flags`. */
export const TICKET_FLAG = { TRANSFERABLE: 1, RETURN: 2, CONCESSION: 4 } as const;
/** Bits of a usage record's `flags`. */
export const USAGE_FLAG = { PUNCHED: 1, PAPER_PRINTED: 2 } as const;

const faceCodec = new RecordCodec<TicketFace>('ticket face', protocol.ticketFace);
const usageCodec = new RecordCodec<UsageRecord>('usage record', protocol.usageRecord);

/** Domain-separation prefixes of every signature in the protocol (see apdu-spec). */
export const SIGNATURE_CONTEXT = {
  TFV: utf8('ETKT TFV 1'),
  COMMAND: utf8('ETKT CMD 1'),
  RECEIPT: utf8('ETKT RCPT 1'),
} as const;

export function encodeTicketFace(face: TicketFace): Uint8Array {
  if (face.validUntil < face.validFrom) throw new TlvError('ticket face: validUntil is before validFrom');
  checkRealName(face, (m) => new TlvError(m));
  return tlv(T.TICKET_FACE, faceCodec.encode(face));
}

export function decodeTicketFace(encoded: Uint8Array): TicketFace {
  const outer = TlvMap.parse(encoded, { allowed: [T.TICKET_FACE] });
  const face = faceCodec.decode(outer.require(T.TICKET_FACE));
  if (face.version !== 1) throw new TlvError(`ticket face version ${face.version} not supported`);
  checkRealName(face, (m) => new TlvError(m));
  return face;
}

/** A real-name face has both 95 and 96, and never 8F passenger: its private data stays off the card. */
function checkRealName(face: TicketFace, error: (m: string) => Error): void {
  if ((face.holderRef === undefined) !== (face.holderBinding === undefined)) throw error('ticket face: holderRef and holderBinding go together');
  if (face.holderRef !== undefined && face.passenger !== undefined) throw error('ticket face: a real-name ticket carries no passenger name');
}

/** Is this a real-name ticket (holder data kept by the back office, bound by 96)? */
export function isRealName(face: TicketFace): boolean {
  return face.holderRef !== undefined && face.holderBinding !== undefined;
}

export function newUsageRecord(): UsageRecord {
  return { entries: 0, temporaryExits: 0, state: USAGE_STATE.NEW, flags: 0, lastGate: '', lastStation: '', lastTime: 0, counter: 0 };
}

export function encodeUsageRecord(u: UsageRecord): Uint8Array {
  return tlv(T.USAGE_RECORD, usageCodec.encode(u));
}


export function decodeUsageRecordContent(content: Uint8Array): UsageRecord {
  const u = usageCodec.decode(content);
  for (const k of ['entries', 'temporaryExits', 'state', 'flags', 'lastTime', 'counter'] as const) {
    if (u[k] === undefined) throw new TlvError(`usage record: missing ${k}`);
  }
  return { ...u, lastGate: u.lastGate ?? '', lastStation: u.lastStation ?? '' };
}

export function encodeVerificationCode(v: VerificationCode): Uint8Array {
  return template(
    T.VERIFICATION_CODE,
    tlv(TFV_FIELD.suite, new Uint8Array([v.suite])),
    tlv(TFV_FIELD.authorityKeyId, v.authorityKeyId),
    tlv(TFV_FIELD.signature, v.signature),
  );
}


export function decodeVerificationCode(encoded: Uint8Array): VerificationCode {
  const outer = TlvMap.parse(encoded, { allowed: [T.VERIFICATION_CODE] });
  return decodeVerificationCodeContent(outer.require(T.VERIFICATION_CODE));
}

export function decodeVerificationCodeContent(content: Uint8Array): VerificationCode {
  const { suite, authorityKeyId, signature } = TFV_FIELD;
  const m = TlvMap.parse(content, { allowed: [suite, authorityKeyId, signature] });
  return { suite: m.bytes(suite, 1, 1, 'suite')[0], authorityKeyId: m.bytes(authorityKeyId, 8, 8, 'key id'), signature: m.bytes(signature, 1, 1024, 'signature') };
}

/** What the authority signs: context prefix ‖ encoded TF_A. */
export function verificationCodeMessage(encodedFace: Uint8Array): Uint8Array {
  return concat(SIGNATURE_CONTEXT.TFV, encodedFace);
}


