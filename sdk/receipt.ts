// Card receipts (B4), the answer of WRITE USAGE and DELETE: their field list, the card's encoding, the parsing
// gates and back offices do, and the exact bytes the card signs (pki) or MACs (sym). Both sides share this code.

import { concat, equal } from './bytes.js';
import { sha256 } from './crypto/suite.js';
import { checkSessionMac, sessionMac, SYM_CONTEXT } from './crypto/symmetric.js';
import { decodeSequenceField, encodeSequence, encodeSequenceField, specField, type SequenceField } from './fields.js';
import { T } from './spec.js';
import { decodeUsageRecordContent, encodeUsageRecord, SIGNATURE_CONTEXT, type UsageRecord } from './ticket.js';
import { TlvError, TlvMap, template, tlv, tlvSize } from './tlv.js';

/** What the card says it did: one ticket (TID and face digest) of one card, the event, the counter after it, the new TF_B. */
export interface ReceiptFields {
  cardSerial: Uint8Array;
  tid: string;
  /** DF20: SHA-256 of the encoded A1 the command was applied to (protocol version 2; absent in version 1 receipts). */
  faceDigest?: Uint8Array;
  event: number;
  counter: number;
  /** Absent in deletion receipts. */
  usage?: UsageRecord;
}

/** A card receipt (B4) of WRITE USAGE or DELETE, as parsed from the card's answer. */
export interface Receipt extends ReceiptFields {
  /** 2 (with DF20, signed under "ETKT RCPT 2"), or 1 for receipts kept from before protocol version 2. */
  version: 1 | 2;
  /** Pki mode: SHA-256 of the signed command. Sym mode chains the receipt MAC on the command MAC instead. */
  commandDigest?: Uint8Array;
  /** The card's authenticator: its signature (pki) or its session MAC (sym, also in `mac`). */
  signature: Uint8Array;
  mac?: Uint8Array;
  /** The whole B4 object as the card sent it: keep it, it proves what the card accepted. */
  encoded: Uint8Array;
  /**
   * Sym mode: what the gate must log with `encoded` for the back office to re-check the MAC
   * (verifySymReceipt); a MAC receipt alone is unverifiable without the session it belongs to.
   */
  sym?: SymTransaction;
}

/**
 * What a sym gate keeps of one tap besides the B4 receipt. The card's receipt MAC is keyed by a session
 * key that only RT and RC recreate, and chained on a command MAC that only the command recreates.
 */
export interface SymTransaction {
  operator: string;
  /** C1 of the VERIFY: names the master key (version) the gate used. */
  keyId: Uint8Array;
  /** RT, the gate's VERIFY challenge. */
  terminalChallenge: Uint8Array;
  /** RC, the card's session challenge (C7 of the VERIFY answer). */
  cardChallenge: Uint8Array;
  /** 8E of the VERIFY answer: the chain value the command MAC starts from. */
  viewMac: Uint8Array;
  command: 'WRITE USAGE' | 'DELETE';
  /** The B6 object as the gate sent it, its MAC included. */
  macedCommand: Uint8Array;
}

/** The receipt's own fields, in the order the card sends them (apdu-spec README 3.4); TF_B (A3) follows them. */
const CARD_SERIAL = specField('cardSerial', 'CARD_SERIAL');
const TID = specField('tid', 'TID');
const FACE_DIGEST = specField('faceDigest', 'FACE_DIGEST');
const EVENT = specField('event', 'USAGE_EVENT');
const COUNTER = specField('counter', 'COUNTER');
const RECEIPT_FIELDS: readonly SequenceField<'cardSerial' | 'tid' | 'faceDigest' | 'event' | 'counter'>[] = [CARD_SERIAL, TID, FACE_DIGEST, EVENT, COUNTER];
const COMMAND_DIGEST = specField('commandDigest', 'COMMAND_DIGEST');
const SIGNATURE = specField('signature', 'SIGNATURE');
const MAC = specField('mac', 'MAC');
const OUTER_TAGS = [T.RECEIPT];
const RECEIPT_TAGS = [...RECEIPT_FIELDS.map((f) => f.tag), T.USAGE_RECORD, COMMAND_DIGEST.tag, SIGNATURE.tag, MAC.tag];
/** The signed part of each receipt parseReceipt made (a view of its `encoded`), while `encoded` is still that array. */
const signedParts = new WeakMap<Receipt, { encoded: Uint8Array; signed: Uint8Array }>();

/** What the receipt's signature or MAC covers: known from parsing, or found again if `encoded` was replaced. */
function signedPartOf(receipt: Receipt): Uint8Array {
  const known = signedParts.get(receipt);
  return known && known.encoded === receipt.encoded ? known.signed : receiptSignedBytes(receipt.encoded);
}

/**
 * C6 ‖ C5 ‖ DF20 ‖ CB ‖ CA ‖ [A3]: what the sym MAC covers; a pki receipt adds CF before its signature.
 * `usageEncoded`: A3 of `f.usage` when the caller has it already (the card encoded it for its image).
 */
export function encodeReceiptBody(f: ReceiptFields & { faceDigest: Uint8Array }, usageEncoded?: Uint8Array): Uint8Array {
  // One buffer sized first: the bytes of concat(...RECEIPT_FIELDS.map(encodeSequenceField), A3).
  return encodeSequence(RECEIPT_FIELDS, f, undefined, f.usage ? (usageEncoded ?? encodeUsageRecord(f.usage)) : undefined);
}

/** Pki: the body and CF, the SHA-256 of the B3 command as sent (tag and length included): what the card signs. */
export function signedReceiptPart(body: Uint8Array, signedCommand: Uint8Array): Uint8Array {
  return concat(body, encodeSequenceField(COMMAND_DIGEST, sha256(signedCommand)));
}

/** Pki: the message of the card's receipt signature, "ETKT RCPT 2" ‖ C6 … CF (apdu-spec README 3.4); version 1 receipts used "ETKT RCPT 1". */
export function receiptSignatureMessage(signedPart: Uint8Array, version: 1 | 2 = 2): Uint8Array {
  return concat(version === 1 ? SIGNATURE_CONTEXT.RECEIPT_V1 : SIGNATURE_CONTEXT.RECEIPT, signedPart);
}

/** Pki: what a parsed receipt's signature covers, under its own version's label. */
export function receiptMessage(receipt: Receipt): Uint8Array {
  return receiptSignatureMessage(signedPartOf(receipt), receipt.version);
}

/** Sym: MAC_r over the body, chained on the command MAC it answers (apdu-spec README 3.5). */
export function receiptMac(macKey: Uint8Array, commandMac: Uint8Array, body: Uint8Array): Uint8Array {
  return sessionMac(macKey, SYM_CONTEXT.RECEIPT, commandMac, body);
}

/** B4 { authenticated part, 9E signature } (pki) or B4 { body, 8E MAC } (sym). */
export function encodeReceipt(authenticated: Uint8Array, authenticator: { signature: Uint8Array } | { mac: Uint8Array }): Uint8Array {
  const last = 'mac' in authenticator ? tlv(T.MAC, authenticator.mac) : tlv(T.SIGNATURE, authenticator.signature);
  return template(T.RECEIPT, authenticated, last);
}

/**
 * Parse a B4 receipt; throws TlvError when it is malformed. Only the authenticator's place (last) is enforced:
 * it covers the other fields as sent, whatever their order.
 */
export function parseReceipt(encoded: Uint8Array): Receipt {
  const outer = TlvMap.parse(encoded, { allowed: OUTER_TAGS });
  const content = outer.require(T.RECEIPT);
  const m = TlvMap.parse(content, { allowed: RECEIPT_TAGS });
  if (m.has(MAC.tag) === m.has(SIGNATURE.tag)) throw new TlvError('a receipt carries a signature or a MAC');
  const lastItem = m.items[m.items.length - 1];
  const last = lastItem.tag;
  if (last !== MAC.tag && last !== SIGNATURE.tag) throw new TlvError('a receipt ends with its signature or MAC');

  const field = (f: SequenceField) => decodeSequenceField(f, m.require(f.tag, f.name));
  // DF20 came with protocol version 2; a receipt without it is one kept from before (arbitration still checks it).
  const faceDigest = m.has(FACE_DIGEST.tag) ? (field(FACE_DIGEST) as Uint8Array) : undefined;
  const mac = m.has(MAC.tag) ? (field(MAC) as Uint8Array) : undefined;
  // One literal with every field named: spreading an object built key by key cost ~30 µs a receipt (V8 slow path).
  const receipt: Receipt = {
    cardSerial: field(CARD_SERIAL) as Uint8Array,
    tid: field(TID) as string,
    faceDigest,
    event: field(EVENT) as number,
    counter: field(COUNTER) as number,
    version: faceDigest ? 2 : 1,
    usage: m.has(T.USAGE_RECORD) ? decodeUsageRecordContent(m.require(T.USAGE_RECORD)) : undefined,
    commandDigest: m.has(COMMAND_DIGEST.tag) ? (field(COMMAND_DIGEST) as Uint8Array) : undefined,
    signature: mac ?? (field(SIGNATURE) as Uint8Array),
    mac,
    encoded,
  };
  // What the signature or MAC covers, known now: checking it does not parse the receipt again.
  signedParts.set(receipt, { encoded, signed: content.subarray(0, content.length - tlvSize(last, lastItem.value.length)) });
  return receipt;
}

/** The bytes a receipt signature (or MAC) covers: the B4 content up to (not including) it. */
export function receiptSignedBytes(encoded: Uint8Array): Uint8Array {
  const content = TlvMap.parse(encoded, { allowed: OUTER_TAGS }).require(T.RECEIPT);
  const m = TlvMap.parse(content);
  const last = m.items[m.items.length - 1];
  if (!last || (last.tag !== T.SIGNATURE && last.tag !== T.MAC)) throw new TlvError('receipt does not end with its signature or MAC');
  return content.subarray(0, content.length - tlv(last.tag, last.value).length);
}

/** Does this receipt answer this very B3 command (pki: CF is the command's SHA-256)? */
export function receiptAnswers(receipt: Receipt, signedCommand: Uint8Array): boolean {
  return receipt.commandDigest !== undefined && equal(receipt.commandDigest, sha256(signedCommand));
}

/** Sym: is the receipt's MAC the card's answer to the command whose MAC is `commandMac`? */
export function checkReceiptMac(macKey: Uint8Array, commandMac: Uint8Array, receipt: Receipt): boolean {
  return receipt.mac !== undefined && checkSessionMac(macKey, receipt.mac, SYM_CONTEXT.RECEIPT, commandMac, signedPartOf(receipt));
}
