// Gate mode sym receipts (apdu-spec §3.5): the session, command MAC and receipt MAC computations that
// gates run at the tap and the operator's back office re-runs later from what the gate logged.

import { equal, fromHex, hex } from '../bytes.js';
import { checkUsageCommandMac, decodeUsageCommand, type DecodedUsageCommand } from '../commands/usage-command.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { diversify, masterKeyId, sessionKeys, type SessionKeys } from '../crypto/symmetric.js';
import { checkReceiptMac, parseReceipt, type Receipt, type SymTransaction } from '../receipt.js';

export type { SymTransaction };

/** An operator's checking master key (AES-128): the patent's checking master key for key diversification. */
export interface OperatorMasterKey {
  operator: string;
  key: Uint8Array;
}

/** The commands a sym gate MACs. */
export type SymCommandName = SymTransaction['command'];

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
export function symSessionKeys(master: OperatorMasterKey, serial: Uint8Array, terminalChallenge: Uint8Array, cardChallenge: Uint8Array, keys?: SymKeyCache): SessionKeys {
  return sessionKeys(keys ? keys.cardKey(master, serial) : diversify(master.key, serial, master.operator), terminalChallenge, cardChallenge);
}

/**
 * The derivations a back office repeats for every receipt of the same card: the master key's id and each card's
 * K_card, kept (bounded) so that ingesting a journal derives each once. Holds keys: keep it where the master key
 * already is (the back office's process), never in a gate's.
 */
export class SymKeyCache {
  private readonly ids = new WeakMap<Uint8Array, Map<string, Uint8Array>>();
  private readonly cards = new Map<string, { master: Uint8Array; key: Uint8Array }>();

  /** `maxCards`: how many cards' keys are kept; past that, all are forgotten and derived again. */
  constructor(private readonly maxCards = 200_000) {}

  /** The master key's id for its operator (what a sym transaction names in C1), derived once per key object. */
  keyId(master: OperatorMasterKey): Uint8Array {
    let byOperator = this.ids.get(master.key);
    if (!byOperator) this.ids.set(master.key, (byOperator = new Map()));
    let id = byOperator.get(master.operator);
    if (!id) byOperator.set(master.operator, (id = masterKeyId(master.key, master.operator)));
    return id;
  }

  /** K_card of `serial` under `master` (the same as `diversify`), derived once per card. */
  cardKey(master: OperatorMasterKey, serial: Uint8Array): Uint8Array {
    const k = `${master.operator}\u0000${hex(serial)}`;
    const hit = this.cards.get(k);
    // Keyed by operator and serial, checked against the master key object: a new master key version derives anew.
    if (hit && hit.master === master.key) return hit.key;
    const key = diversify(master.key, serial, master.operator);
    if (this.cards.size >= this.maxCards) this.cards.clear();
    this.cards.set(k, { master: master.key, key });
    return key;
  }
}

function failed(message: string): never {
  throw new CryptoError(`sym receipt does not verify: ${message}`);
}

/** Options of `verifySymReceipt` for a caller that checks many receipts. */
export interface SymVerifyOptions {
  /** Derivations kept from earlier receipts (a back office ingesting journals). */
  keys?: SymKeyCache;
  /** The receipt as the caller parsed it from `receiptEncoded` (saves parsing it again). */
  receipt?: Receipt;
}

/**
 * The operator's back office re-checks a sym-mode receipt: re-derives K_card from the master key and the
 * card serial, the session from RT and RC, then checks the logged command's MAC and the receipt's MAC
 * chained on it. Throws CryptoError when anything does not match.
 *
 * Only the holder of the master key can run this, and it could equally have made the receipt: it proves
 * to the operator what the card accepted, not to a third party (use pki mode for that).
 */
export function verifySymReceipt(master: OperatorMasterKey, serial: Uint8Array, receiptEncoded: Uint8Array, tx: SymTransaction, options: SymVerifyOptions = {}): VerifiedSymReceipt {
  if (serial.length !== 8) throw new InvalidInputError('card serial must be 8 bytes');
  if (tx.operator !== master.operator) failed(`made for operator ${tx.operator}, this key is ${master.operator}'s`);
  if (!equal(options.keys ? options.keys.keyId(master) : masterKeyId(master.key, master.operator), tx.keyId)) failed(`made under master key ${hex(tx.keyId)}, not this one`);
  let receipt: Receipt, command: DecodedUsageCommand;
  try {
    // A receipt the caller parsed already is used only when it was parsed from these very bytes.
    receipt = options.receipt && equal(options.receipt.encoded, receiptEncoded) ? options.receipt : parseReceipt(receiptEncoded);
    command = decodeUsageCommand(tx.command, 'sym', tx.macedCommand);
  } catch (e) {
    failed(`malformed record (${(e as Error).message})`);
  }
  const f = command.fields;
  if (!receipt.mac) failed('a signed (pki) receipt, not a MAC');
  if (!equal(receipt.cardSerial, serial)) failed(`receipt is from card ${hex(receipt.cardSerial)}, not ${hex(serial)}`);
  if (!equal(f.cardChallenge, tx.cardChallenge)) failed('the command does not carry the session\'s card challenge');
  const keys = symSessionKeys(master, serial, tx.terminalChallenge, tx.cardChallenge, options.keys);
  if (!checkUsageCommandMac(keys.mac, command.authenticator, tx.viewMac, tx.command, serial, command.body)) failed('the logged command is not the one of this session');
  if (!checkReceiptMac(keys.mac, command.authenticator, receipt)) failed('receipt MAC is wrong: not this card\'s answer to this command');
  // The card MAC'd its receipt for this command, so a mismatch here would be a card bug, not a forgery; still refuse it.
  if (receipt.tid !== f.tid) failed('receipt names another ticket than the command');
  return {
    receipt,
    command: tx.command,
    tid: f.tid,
    commandCounter: f.counter,
    event: tx.command === 'DELETE' ? undefined : f.event,
    gateId: f.gateId,
    station: f.station,
    time: f.time,
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
