// The ticket formats of the patent: ticket face TF_A, verification code TF_V, usage record TF_B.
// Field tables come from apdu-spec; these are their typed views and canonical encodings.

import { concat, readUint, utf8 } from './bytes.js';
import { sha256 } from './crypto/suite.js';
import { RecordCodec } from './fields.js';
import { protocol, T, TFV_FIELD, USAGE_STATE } from './spec.js';
import { TlvMap, template, tlv, TlvError } from './tlv.js';

/** Face format versions: 2 names the one card the ticket is issued to (94); 1 predates it (images written before). */
export const FACE_VERSION = { UNBOUND: 1, CARD_BOUND: 2 } as const;

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
  /** 1 fixed fare (default), 2 per trip (a pass priced by the fare table, charged to its seller). */
  pricing?: number;
  /** Version 2: serial of the card the ticket is issued to (set by the authority when it signs for that card). */
  card?: Uint8Array;
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

/** TF_V (驗證碼): the authority's signature over TF_A, by its root key or by a signing key the root certified. */
export interface VerificationCode {
  suite: number;
  /** 81: the key that signed (a root key the card holds, or the certified key of `certificate`). */
  authorityKeyId: Uint8Array;
  signature: Uint8Array;
  /** A4 as encoded (tag and length included): the signing key's certificate by a root key; absent for a root signature. */
  certificate?: Uint8Array;
}

/** Bits of a ticket face's `flags`. */
export const TICKET_FLAG = { TRANSFERABLE: 1, RETURN: 2, CONCESSION: 4 } as const;
/** Face `kind` values (apdu-spec ticketFace). */
export const TICKET_KIND = { RAIL: 1, METRO: 2, BUS: 3, EVENT: 4 } as const;
/** Face `pricing` values: how the ticket is paid. */
export const PRICING = { FIXED: 1, PER_TRIP: 2 } as const;

/** A pass: no origin and no destination, so valid at any station of its operator (apdu-spec README 5). */
export function isPass(face: Pick<TicketFace, 'origin' | 'destination'>): boolean {
  return !face.origin && !face.destination;
}
/** Bits of a usage record's `flags`. */
export const USAGE_FLAG = { PUNCHED: 1, PAPER_PRINTED: 2 } as const;

const faceCodec = new RecordCodec<TicketFace>('ticket face', protocol.ticketFace);
const usageCodec = new RecordCodec<UsageRecord>('usage record', protocol.usageRecord);

/**
 * Domain-separation prefixes of every signature in the protocol (apdu-spec README 3). Protocol version 2 signs
 * TF_V, commands and receipts under new labels; the version 1 labels verify what was signed before.
 */
export const SIGNATURE_CONTEXT = {
  TFV: utf8('ETKT TFV 2'),
  TFV_V1: utf8('ETKT TFV 1'),
  COMMAND: utf8('ETKT CMD 2'),
  RECEIPT: utf8('ETKT RCPT 2'),
  RECEIPT_V1: utf8('ETKT RCPT 1'),
  ISSUER: utf8('ETKT ISSUER 1'),
} as const;

/**
 * Canonical A1. A version 2 face may lack its card only while the ticket server builds it (the authority binds it
 * when it signs for a card); decodeTicketFace refuses such a face.
 */
export function encodeTicketFace(face: TicketFace): Uint8Array {
  if (face.validUntil < face.validFrom) throw new TlvError('ticket face: validUntil is before validFrom');
  if (face.version !== FACE_VERSION.CARD_BOUND && face.version !== FACE_VERSION.UNBOUND) throw new TlvError(`ticket face version ${face.version} not supported`);
  if (face.version === FACE_VERSION.UNBOUND && face.card !== undefined) throw new TlvError('ticket face version 1 names no card');
  checkRealName(face, (m) => new TlvError(m));
  return tlv(T.TICKET_FACE, faceCodec.encode(face));
}

export function decodeTicketFace(encoded: Uint8Array): TicketFace {
  const outer = TlvMap.parse(encoded, { allowed: [T.TICKET_FACE] });
  const face = faceCodec.decode(outer.require(T.TICKET_FACE));
  if (face.version === FACE_VERSION.CARD_BOUND) {
    if (face.card === undefined) throw new TlvError('ticket face version 2 must name its card (94)');
  } else if (face.version === FACE_VERSION.UNBOUND) {
    if (face.card !== undefined) throw new TlvError('ticket face version 1 names no card');
  } else {
    throw new TlvError(`ticket face version ${face.version} not supported`);
  }
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

/** The version byte of an encoded A1, without decoding the rest (which signature label applies). */
export function faceVersionOf(encodedFace: Uint8Array): number {
  const outer = TlvMap.parse(encodedFace, { allowed: [T.TICKET_FACE] });
  const v = TlvMap.parse(outer.require(T.TICKET_FACE)).get(parseInt(protocol.ticketFace[0].tag, 16));
  if (!v || v.length !== 1) throw new TlvError('ticket face: missing version');
  return readUint(v);
}

/** DF20: SHA-256 of the encoded A1, tag and length included (receipts name the face they apply to). */
export function faceDigestOf(encodedFace: Uint8Array): Uint8Array {
  return sha256(encodedFace);
}

export function newUsageRecord(): UsageRecord {
  return { entries: 0, temporaryExits: 0, state: USAGE_STATE.NEW, flags: 0, lastGate: '', lastStation: '', lastTime: 0, counter: 0 };
}

export function encodeUsageRecord(u: UsageRecord): Uint8Array {
  // The fields named one by one, in the spec's order (USAGE_KEYS, checked at load), for the codec's checks and writing.
  return usageCodec.encodeFields([u.entries, u.temporaryExits, u.state, u.flags, u.lastGate, u.lastStation, u.lastTime, u.counter], u, T.USAGE_RECORD);
}


/**
 * The fields of A3 as decodeUsageRecordContent builds them, named one by one (a gate decodes two records a tap: a
 * literal of named fields is a fraction of a loop of keyed reads and a spread). The spec's list must be exactly these.
 */
const USAGE_KEYS = ['entries', 'temporaryExits', 'state', 'flags', 'lastGate', 'lastStation', 'lastTime', 'counter'];
/** Indexes of the fields a usage record must have (all but the last gate and station, which may be absent). */
const USAGE_REQUIRED = [0, 1, 2, 3, 6, 7];
if (protocol.usageRecord.map((f) => f.name).join() !== USAGE_KEYS.join()) throw new Error('apdu-spec usageRecord fields changed: update decodeUsageRecordContent');

export function decodeUsageRecordContent(content: Uint8Array): UsageRecord {
  const v = usageCodec.decodeFields(content);
  for (const i of USAGE_REQUIRED) if (v[i] === undefined) throw new TlvError(`usage record: missing ${USAGE_KEYS[i]}`);
  return {
    entries: v[0] as number,
    temporaryExits: v[1] as number,
    state: v[2] as number,
    flags: v[3] as number,
    lastGate: (v[4] as string | undefined) ?? '',
    lastStation: (v[5] as string | undefined) ?? '',
    lastTime: v[6] as number,
    counter: v[7] as number,
  };
}

/** A2 { 80 suite, 81 key id, 82 signature, [A4 certificate] }. */
export function encodeVerificationCode(v: VerificationCode): Uint8Array {
  return template(
    T.VERIFICATION_CODE,
    tlv(TFV_FIELD.suite, new Uint8Array([v.suite])),
    tlv(TFV_FIELD.authorityKeyId, v.authorityKeyId),
    tlv(TFV_FIELD.signature, v.signature),
    v.certificate,
  );
}


export function decodeVerificationCode(encoded: Uint8Array): VerificationCode {
  const outer = TlvMap.parse(encoded, { allowed: [T.VERIFICATION_CODE] });
  return decodeVerificationCodeContent(outer.require(T.VERIFICATION_CODE));
}

/** Strict: 80, 81, 82 in this order, then optionally A4 (kept as encoded; key-certificate.ts decodes it). */
export function decodeVerificationCodeContent(content: Uint8Array): VerificationCode {
  const { suite, authorityKeyId, signature, certificate } = TFV_FIELD;
  const m = TlvMap.parse(content, { allowed: [suite, authorityKeyId, signature, certificate] });
  const order = [suite, authorityKeyId, signature, certificate];
  if (m.items.some((item, i) => item.tag !== order[i])) throw new TlvError('verification code: fields out of order (80, 81, 82, [A4])');
  const cert = m.get(certificate);
  return {
    suite: m.bytes(suite, 1, 1, 'suite')[0],
    authorityKeyId: m.bytes(authorityKeyId, 8, 8, 'key id'),
    signature: m.bytes(signature, 1, 1024, 'signature'),
    ...(cert ? { certificate: tlv(certificate, cert) } : {}),
  };
}

/** What the authority signs: context prefix ‖ encoded TF_A; the prefix is the face version's (v2 'ETKT TFV 2'). */
export function verificationCodeMessage(encodedFace: Uint8Array): Uint8Array {
  return concat(faceVersionOf(encodedFace) === FACE_VERSION.UNBOUND ? SIGNATURE_CONTEXT.TFV_V1 : SIGNATURE_CONTEXT.TFV, encodedFace);
}


