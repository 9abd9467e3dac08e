// Gate mode sym receipts (apdu-spec §3.5): the session, command MAC and receipt MAC computations that
// gates run at the tap and the operator's back office re-runs later from what the gate logged.

import { constantTimeEqual, equal, fromHex, fromUtf8, hex, readUint } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { checkSessionMac, diversify, masterKeyId, sessionKeys, sessionMac, SYM_CONTEXT, SYM_MAC_LENGTH, type SessionKeys } from '../crypto/symmetric.js';
import { command, LIMITS, T } from '../spec.js';
import { parseReceipt, receiptSignedBytes, type Receipt } from '../receipt.js';
import { TlvMap, tlv } from '../tlv.js';

/** An operator's checking master key (AES-128): the patent's checking master key for key diversification. */
export interface OperatorMasterKey {
  operator: string;
  key: Uint8Array;
}

/** The commands a sym gate MACs. */
export type SymCommandName = 'WRITE USAGE' | 'DELETE';

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
  command: SymCommandName;
  /** The B6 object as the gate sent it, its MAC included. */
  macedCommand: Uint8Array;
}

/** What a verified receipt proves the card accepted (the command fields as the gate sent them). */
export interface VerifiedSymReceipt {
  receipt: Receipt;
  command: SymCommandName;
  tid: string;
  /** Usage counter the command was made against; the receipt's `counter` is the one after it. */
  commandCounter: number;
  event?: number;
  gateId: string;
  station: string;
  /** Terminal clock, epoch seconds. */
  time: number;
}

/** K_card and the session keys of one tap, from the master key: what both the gate and the back office derive. */
export function symSessionKeys(master: OperatorMasterKey, serial: Uint8Array, terminalChallenge: Uint8Array, cardChallenge: Uint8Array): SessionKeys {
  return sessionKeys(diversify(master.key, serial, master.operator), terminalChallenge, cardChallenge);
}

/** MAC_c of a WRITE USAGE / DELETE P1=01, over the B6 fields before 8E, chained on the VERIFY answer's MAC. */
export function symCommandMac(macKey: Uint8Array, viewMac: Uint8Array, name: SymCommandName, serial: Uint8Array, body: Uint8Array): Uint8Array {
  return sessionMac(macKey, SYM_CONTEXT.COMMAND, viewMac, new Uint8Array([command(name).insByte]), serial, body);
}

/** MAC_r of a B4 receipt, chained on the command MAC it answers. */
export function checkSymReceiptMac(macKey: Uint8Array, commandMac: Uint8Array, receipt: Receipt): boolean {
  return receipt.mac !== undefined && checkSessionMac(macKey, receipt.mac, SYM_CONTEXT.RECEIPT, commandMac, receiptSignedBytes(receipt.encoded));
}

function failed(message: string): never {
  throw new CryptoError(`sym receipt does not verify: ${message}`);
}

/**
 * The operator's back office re-checks a sym-mode receipt: re-derives K_card from the master key and the
 * card serial, the session from RT and RC, then checks the logged command's MAC and the receipt's MAC
 * chained on it. Throws CryptoError when anything does not match.
 *
 * Only the holder of the master key can run this, and it could equally have made the receipt: it proves
 * to the operator what the card accepted, not to a third party (use pki mode for that).
 */
export function verifySymReceipt(master: OperatorMasterKey, serial: Uint8Array, receiptEncoded: Uint8Array, tx: SymTransaction): VerifiedSymReceipt {
  if (serial.length !== 8) throw new InvalidInputError('card serial must be 8 bytes');
  if (tx.operator !== master.operator) failed(`made for operator ${tx.operator}, this key is ${master.operator}'s`);
  if (!equal(masterKeyId(master.key, master.operator), tx.keyId)) failed(`made under master key ${hex(tx.keyId)}, not this one`);
  let receipt: Receipt, body: Uint8Array, commandMac: Uint8Array, fields: TlvMap;
  try {
    receipt = parseReceipt(receiptEncoded);
    const outer = TlvMap.parse(tx.macedCommand, { allowed: [T.MACED_COMMAND] });
    const content = outer.require(T.MACED_COMMAND);
    fields = TlvMap.parse(content, { allowed: [T.CARD_CHALLENGE, T.TID, T.COUNTER, T.USAGE_EVENT, T.GATE_ID, T.STATION, T.TIME, T.MAC] });
    if (fields.items[fields.items.length - 1]?.tag !== T.MAC) throw new Error('the command does not end with its MAC');
    commandMac = fields.bytes(T.MAC, SYM_MAC_LENGTH, SYM_MAC_LENGTH, 'command MAC');
    body = content.subarray(0, content.length - tlv(T.MAC, commandMac).length);
  } catch (e) {
    failed(`malformed record (${(e as Error).message})`);
  }
  if (!receipt.mac) failed('a signed (pki) receipt, not a MAC');
  if (!equal(receipt.cardSerial, serial)) failed(`receipt is from card ${hex(receipt.cardSerial)}, not ${hex(serial)}`);
  if (tx.cardChallenge.length !== LIMITS.challengeLength || !equal(fields.require(T.CARD_CHALLENGE), tx.cardChallenge)) failed('the command does not carry the session\'s card challenge');
  const keys = symSessionKeys(master, serial, tx.terminalChallenge, tx.cardChallenge);
  if (!constantTimeEqual(symCommandMac(keys.mac, tx.viewMac, tx.command, serial, body), commandMac)) failed('the logged command is not the one of this session');
  if (!checkSymReceiptMac(keys.mac, commandMac, receipt)) failed('receipt MAC is wrong: not this card\'s answer to this command');
  const tid = fromUtf8(fields.require(T.TID));
  // The card MAC'd its receipt for this command, so a mismatch here would be a card bug, not a forgery; still refuse it.
  if (receipt.tid !== tid) failed('receipt names another ticket than the command');
  const event = fields.get(T.USAGE_EVENT);
  return {
    receipt,
    command: tx.command,
    tid,
    commandCounter: readUint(fields.require(T.COUNTER)),
    event: event && event[0],
    gateId: fromUtf8(fields.require(T.GATE_ID)),
    station: fromUtf8(fields.require(T.STATION)),
    time: readUint(fields.require(T.TIME)),
  };
}

/** The transaction record as JSON (bytes in hex): how the CLI prints it and a gate log would store it. */
export function symTransactionToJson(tx: SymTransaction): Record<string, string> {
  return {
    operator: tx.operator,
    keyId: hex(tx.keyId),
    terminalChallenge: hex(tx.terminalChallenge),
    cardChallenge: hex(tx.cardChallenge),
    viewMac: hex(tx.viewMac),
    command: tx.command,
    macedCommand: hex(tx.macedCommand),
  };
}

/** Read a SymTransaction from the JSON that symTransactionToJson wrote (a gate log). */
export function symTransactionFromJson(json: Record<string, unknown>): SymTransaction {
  const str = (k: string): string => {
    const v = json[k];
    if (typeof v !== 'string') throw new InvalidInputError(`sym transaction: ${k} is missing`);
    return v;
  };
  const command = str('command');
  if (command !== 'WRITE USAGE' && command !== 'DELETE') throw new InvalidInputError('sym transaction: command is WRITE USAGE or DELETE');
  return {
    operator: str('operator'),
    keyId: fromHex(str('keyId')),
    terminalChallenge: fromHex(str('terminalChallenge')),
    cardChallenge: fromHex(str('cardChallenge')),
    viewMac: fromHex(str('viewMac')),
    command,
    macedCommand: fromHex(str('macedCommand')),
  };
}
