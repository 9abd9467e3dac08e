// Card receipts (B4) as WRITE USAGE and DELETE answer them: parsing and the bytes their signature or MAC
// covers. Gates check them at the tap; back offices re-check them later, so both sides share this code.

import { fromUtf8, readUint } from './bytes.js';
import { CryptoError } from './errors.js';
import { LIMITS, T } from './spec.js';
import { decodeUsageRecordContent, type UsageRecord } from './ticket.js';
import { TlvMap, tlv } from './tlv.js';
import type { SymTransaction } from './roles/sym-receipts.js';

/** A card receipt (B4) of WRITE USAGE or DELETE, as parsed from the card's answer. */
export interface Receipt {
  cardSerial: Uint8Array;
  tid: string;
  event: number;
  counter: number;
  usage?: UsageRecord;
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

/** Parse a B4 receipt; CryptoError when it is malformed. */
export function parseReceipt(encoded: Uint8Array): Receipt {
  const outer = TlvMap.parse(encoded, { allowed: [T.RECEIPT] });
  const m = TlvMap.parse(outer.require(T.RECEIPT), {
    allowed: [T.CARD_SERIAL, T.TID, T.USAGE_EVENT, T.COUNTER, T.USAGE_RECORD, T.COMMAND_DIGEST, T.SIGNATURE, T.MAC],
  });
  if (m.has(T.MAC) === m.has(T.SIGNATURE)) throw new CryptoError('a receipt carries a signature or a MAC');
  const mac = m.has(T.MAC) ? m.bytes(T.MAC, LIMITS.symmetricMacLength, LIMITS.symmetricMacLength, 'MAC') : undefined;
  return {
    cardSerial: m.bytes(T.CARD_SERIAL, 8, 8, 'serial'),
    tid: fromUtf8(m.bytes(T.TID, 1, 32, 'TID')),
    event: m.bytes(T.USAGE_EVENT, 1, 1, 'event')[0],
    counter: readUint(m.bytes(T.COUNTER, 2, 2, 'counter')),
    usage: m.has(T.USAGE_RECORD) ? decodeUsageRecordContent(m.require(T.USAGE_RECORD)) : undefined,
    commandDigest: m.has(T.COMMAND_DIGEST) ? m.bytes(T.COMMAND_DIGEST, 32, 32, 'digest') : undefined,
    signature: mac ?? m.bytes(T.SIGNATURE, 1, 1024, 'signature'),
    mac,
    encoded,
  };
}

/** The bytes a receipt signature (or MAC) covers: the B4 content up to (not including) it. */
export function receiptSignedBytes(encoded: Uint8Array): Uint8Array {
  const outer = TlvMap.parse(encoded, { allowed: [T.RECEIPT] });
  const content = outer.require(T.RECEIPT);
  const m = TlvMap.parse(content);
  const last = m.items[m.items.length - 1];
  if (last.tag !== T.SIGNATURE && last.tag !== T.MAC) throw new CryptoError('receipt does not end with its signature');
  return content.subarray(0, content.length - tlv(T.SIGNATURE, last.value).length);
}
