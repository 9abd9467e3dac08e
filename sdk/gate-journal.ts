// The gate's tap journal records and their authentication (docs/gates.md): one TLV record per tap, chained by
// SHA-256 to the gate's previous record, and checkpoints signed by the gate's own key over the chain's head.
// Gates write them (host/journal.ts); the back office verifies them (backoffice/journal.ts). Both share this code.

import { createHash } from 'node:crypto';
import { concat, equal, fromUtf8, hex, readUint, utf8 } from './bytes.js';
import { CryptoError, InvalidInputError } from './errors.js';
import { getSuite } from './crypto/suites.js';
import type { Signer } from './crypto/suite.js';
import type { SymTransaction } from './receipt.js';
import type { SuiteName } from './spec.js';
import { TlvError, TlvMap, decodeOne, template, tlv } from './tlv.js';

export const JOURNAL_FORMAT_VERSION = 1;
export const RECORD_CONTEXT = utf8('ETKT JRNL 1');
export const CHECKPOINT_CONTEXT = utf8('ETKT JCKP 1');
export const HASH_LENGTH = 32;
/** The `prev` of a gate's first record: nothing came before it. */
export const GENESIS = new Uint8Array(HASH_LENGTH);

/** Whether the holder's identity was checked (real-name tickets; absent when the ticket is not real-name). */
export type RealNameCheck = 'checked' | 'not_checked' | 'mismatch';

/** One tap as the gate journals it, before it opens (or after it refused). */
export interface TapFields {
  /** Gate id: the gate's registered client id. */
  gateId: string;
  /** Gate clock, epoch milliseconds. */
  time: number;
  direction: 'entry' | 'exit';
  pass: boolean;
  /** REJECT reason (gate.ts RejectReason); absent on PASS. */
  reason?: string;
  station: string;
  mode: 'pki' | 'sym';
  /** The ticket the card showed (absent when no ticket was read). */
  operator?: string;
  tid?: string;
  cardSerial?: Uint8Array;
  /** The ticket's counter as the card showed it before this tap (the receipt carries the one after). */
  counter?: number;
  /** SHA-256 of the ticket face (A1) as the card showed it. */
  faceDigest?: Uint8Array;
  /** The card's receipt (B4) exactly as received: present on every PASS. */
  receipt?: Uint8Array;
  /** Gate mode sym: what the back office needs to re-check the receipt's MAC. */
  transaction?: SymTransaction;
  /** Version of the denylist the gate held when it decided. */
  denylistVersion: number;
  realName?: RealNameCheck;
}

export interface TapRecord extends TapFields {
  /** Per-gate sequence number, 1, 2, 3, ...: the back office stores each (gate, seq) once. */
  seq: number;
  /** Hash of the gate's previous record (GENESIS for seq 1). */
  prev: Uint8Array;
  /** The encoded record: what is written, uploaded and hashed. */
  encoded: Uint8Array;
  /** recordHash(encoded): the next record's `prev`. */
  hash: Uint8Array;
}

/** A gate's signature over the head of its chain: it authenticates every record up to `seq`. */
export interface Checkpoint {
  gateId: string;
  seq: number;
  head: Uint8Array;
  /** Epoch milliseconds, gate clock. */
  time: number;
  signature: Uint8Array;
}

// Record tags (docs/gates.md "Journal format"). Single-byte context tags; templates E0 (record), B7 (sym transaction).
const R = {
  RECORD: 0xe0,
  VERSION: 0x80,
  GATE: 0x81,
  SEQ: 0x82,
  TIME: 0x83,
  DIRECTION: 0x84,
  DECISION: 0x85,
  REASON: 0x86,
  STATION: 0x87,
  MODE: 0x88,
  OPERATOR: 0x89,
  TID: 0x8a,
  CARD: 0x8b,
  COUNTER: 0x8c,
  FACE_DIGEST: 0x8d,
  DENYLIST: 0x8e,
  REAL_NAME: 0x8f,
  PREV: 0x90,
  RECEIPT: 0xb4,
  SYM: 0xb7,
} as const;
const SYM = { OPERATOR: 0x80, KEY_ID: 0x81, RT: 0x82, RC: 0x83, VIEW_MAC: 0x84, COMMAND: 0x85, MACED: 0x86 } as const;
const REAL_NAME: RealNameCheck[] = ['checked', 'not_checked', 'mismatch'];
const CHECKPOINT = 0xe1;

function uint(n: number, bytes: number, what: string): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 2 ** (8 * bytes)) throw new InvalidInputError(`journal record: ${what} must be an integer of ${bytes} bytes, got ${n}`);
  const b = new Uint8Array(bytes);
  let v = n;
  for (let i = bytes - 1; i >= 0; i--) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return b;
}

function text(v: string, max: number, what: string): Uint8Array {
  const b = utf8(v);
  if (b.length < 1 || b.length > max) throw new InvalidInputError(`journal record: ${what} must be 1..${max} bytes of UTF-8`);
  return b;
}

function encodeSym(t: SymTransaction): Uint8Array {
  return template(
    R.SYM,
    tlv(SYM.OPERATOR, text(t.operator, 16, 'sym operator')),
    tlv(SYM.KEY_ID, t.keyId),
    tlv(SYM.RT, t.terminalChallenge),
    tlv(SYM.RC, t.cardChallenge),
    tlv(SYM.VIEW_MAC, t.viewMac),
    tlv(SYM.COMMAND, new Uint8Array([t.command === 'WRITE USAGE' ? 1 : 2])),
    tlv(SYM.MACED, t.macedCommand),
  );
}

/** SHA-256 over the context and the encoded record: the link the next record carries. */
export function recordHash(encoded: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(RECORD_CONTEXT).update(encoded).digest());
}

/** Encode a tap as record `seq` chained on `prev`. Throws InvalidInputError for a field out of range. */
export function encodeTapRecord(f: TapFields, seq: number, prev: Uint8Array): TapRecord {
  if (prev.length !== HASH_LENGTH) throw new InvalidInputError('journal record: prev must be 32 bytes');
  if (seq < 1) throw new InvalidInputError('journal record: seq starts at 1');
  const parts: (Uint8Array | undefined)[] = [
    tlv(R.VERSION, new Uint8Array([JOURNAL_FORMAT_VERSION])),
    tlv(R.GATE, text(f.gateId, 32, 'gate id')),
    tlv(R.SEQ, uint(seq, 6, 'seq')),
    tlv(R.TIME, uint(f.time, 6, 'time')),
    tlv(R.DIRECTION, new Uint8Array([f.direction === 'entry' ? 1 : 2])),
    tlv(R.DECISION, new Uint8Array([f.pass ? 1 : 0])),
    f.reason !== undefined ? tlv(R.REASON, text(f.reason, 32, 'reason')) : undefined,
    tlv(R.STATION, text(f.station, 16, 'station')),
    tlv(R.MODE, new Uint8Array([f.mode === 'pki' ? 1 : 2])),
    f.operator !== undefined ? tlv(R.OPERATOR, text(f.operator, 16, 'operator')) : undefined,
    f.tid !== undefined ? tlv(R.TID, text(f.tid, 32, 'tid')) : undefined,
    f.cardSerial !== undefined ? tlv(R.CARD, f.cardSerial) : undefined,
    f.counter !== undefined ? tlv(R.COUNTER, uint(f.counter, 2, 'counter')) : undefined,
    f.faceDigest !== undefined ? tlv(R.FACE_DIGEST, f.faceDigest) : undefined,
    tlv(R.DENYLIST, uint(f.denylistVersion, 4, 'denylist version')),
    f.realName !== undefined ? tlv(R.REAL_NAME, new Uint8Array([REAL_NAME.indexOf(f.realName) + 1])) : undefined,
    tlv(R.PREV, prev),
    f.receipt, // B4 exactly as the card sent it
    f.transaction ? encodeSym(f.transaction) : undefined,
  ];
  if (f.cardSerial !== undefined && f.cardSerial.length !== 8) throw new InvalidInputError('journal record: card serial must be 8 bytes');
  if (f.faceDigest !== undefined && f.faceDigest.length !== HASH_LENGTH) throw new InvalidInputError('journal record: face digest must be 32 bytes');
  if (f.realName !== undefined && !REAL_NAME.includes(f.realName)) throw new InvalidInputError(`journal record: realName is one of ${REAL_NAME.join(', ')}`);
  if (f.receipt !== undefined && f.receipt[0] !== R.RECEIPT) throw new InvalidInputError('journal record: the receipt must be a B4 object');
  const encoded = template(R.RECORD, ...parts);
  return { ...f, seq, prev, encoded, hash: recordHash(encoded) };
}

function one(m: TlvMap, tag: number, len: number, what: string): number {
  const v = m.bytes(tag, len, len, what);
  return v[0];
}

/** Decode one record strictly; throws TlvError when it is malformed. */
export function decodeTapRecord(encoded: Uint8Array): TapRecord {
  const { tlv: outer, next } = decodeOne(encoded);
  if (outer.tag !== R.RECORD || next !== encoded.length) throw new TlvError('not a journal record (E0)');
  const m = TlvMap.parse(outer.value, { allowed: Object.values(R).filter((t) => t !== R.RECORD) });
  const str = (tag: number, max: number, what: string) => {
    const v = m.bytes(tag, 1, max, what);
    try {
      return fromUtf8(v);
    } catch {
      throw new TlvError(`journal record: ${what} is not UTF-8`);
    }
  };
  const optStr = (tag: number, max: number, what: string) => (m.has(tag) ? str(tag, max, what) : undefined);
  if (one(m, R.VERSION, 1, 'version') !== JOURNAL_FORMAT_VERSION) throw new TlvError('journal record: unknown format version');
  const direction = one(m, R.DIRECTION, 1, 'direction');
  const decision = one(m, R.DECISION, 1, 'decision');
  const mode = one(m, R.MODE, 1, 'mode');
  if (direction !== 1 && direction !== 2) throw new TlvError('journal record: direction is 1 or 2');
  if (decision > 1) throw new TlvError('journal record: decision is 0 or 1');
  if (mode !== 1 && mode !== 2) throw new TlvError('journal record: mode is 1 or 2');
  let transaction: SymTransaction | undefined;
  if (m.has(R.SYM)) {
    const s = TlvMap.parse(m.require(R.SYM), { allowed: Object.values(SYM) });
    const cmd = one(s, SYM.COMMAND, 1, 'sym command');
    if (cmd !== 1 && cmd !== 2) throw new TlvError('journal record: sym command is 1 or 2');
    let operator: string;
    try {
      operator = fromUtf8(s.bytes(SYM.OPERATOR, 1, 16, 'sym operator'));
    } catch (e) {
      if (e instanceof TlvError) throw e;
      throw new TlvError('journal record: sym operator is not UTF-8');
    }
    transaction = {
      operator,
      keyId: s.bytes(SYM.KEY_ID, 8, 8, 'sym key id').slice(),
      terminalChallenge: s.bytes(SYM.RT, 16, 16, 'sym terminal challenge').slice(),
      cardChallenge: s.bytes(SYM.RC, 8, 8, 'sym card challenge').slice(),
      viewMac: s.bytes(SYM.VIEW_MAC, 8, 8, 'sym view MAC').slice(),
      command: cmd === 1 ? 'WRITE USAGE' : 'DELETE',
      macedCommand: s.bytes(SYM.MACED, 1, 4096, 'sym command').slice(),
    };
  }
  const realName = m.has(R.REAL_NAME) ? REAL_NAME[one(m, R.REAL_NAME, 1, 'real name') - 1] : undefined;
  if (m.has(R.REAL_NAME) && !realName) throw new TlvError('journal record: real name check is 1..3');
  const seq = readUint(m.bytes(R.SEQ, 6, 6, 'seq'));
  if (seq < 1) throw new TlvError('journal record: seq starts at 1');
  const record: TapRecord = {
    gateId: str(R.GATE, 32, 'gate id'),
    seq,
    time: readUint(m.bytes(R.TIME, 6, 6, 'time')),
    direction: direction === 1 ? 'entry' : 'exit',
    pass: decision === 1,
    reason: optStr(R.REASON, 32, 'reason'),
    station: str(R.STATION, 16, 'station'),
    mode: mode === 1 ? 'pki' : 'sym',
    operator: optStr(R.OPERATOR, 16, 'operator'),
    tid: optStr(R.TID, 32, 'tid'),
    cardSerial: m.has(R.CARD) ? m.bytes(R.CARD, 8, 8, 'card serial').slice() : undefined,
    counter: m.has(R.COUNTER) ? readUint(m.bytes(R.COUNTER, 2, 2, 'counter')) : undefined,
    faceDigest: m.has(R.FACE_DIGEST) ? m.bytes(R.FACE_DIGEST, 32, 32, 'face digest').slice() : undefined,
    receipt: m.has(R.RECEIPT) ? tlv(R.RECEIPT, m.require(R.RECEIPT)) : undefined,
    transaction,
    denylistVersion: readUint(m.bytes(R.DENYLIST, 4, 4, 'denylist version')),
    realName,
    prev: m.bytes(R.PREV, 32, 32, 'prev').slice(),
    encoded,
    hash: recordHash(encoded),
  };
  if (record.pass && !record.receipt) throw new TlvError('journal record: a PASS carries the card\'s receipt');
  if (!record.pass && record.reason === undefined) throw new TlvError('journal record: a REJECT carries its reason');
  // The re-encoding must give the same bytes: one record, one reading (no reordered or extra fields).
  const again = encodeTapRecord(record, seq, record.prev).encoded;
  if (!equal(again, encoded)) throw new TlvError('journal record: not in canonical form');
  return record;
}

function checkpointBody(c: Omit<Checkpoint, 'signature'>): Uint8Array {
  return template(CHECKPOINT, tlv(R.GATE, text(c.gateId, 32, 'gate id')), tlv(R.SEQ, uint(c.seq, 6, 'seq')), tlv(R.PREV, c.head), tlv(R.TIME, uint(c.time, 6, 'time')));
}

/** The message a checkpoint signature covers: context ‖ E1 { gate, seq, head, time }. */
export function checkpointMessage(c: Omit<Checkpoint, 'signature'>): Uint8Array {
  if (c.head.length !== HASH_LENGTH) throw new InvalidInputError('checkpoint head must be 32 bytes');
  return concat(CHECKPOINT_CONTEXT, checkpointBody(c));
}

/** Sign the head of a gate's chain with the gate's key (one private-key operation per checkpoint, not per tap). */
export function signCheckpoint(signer: Signer, c: Omit<Checkpoint, 'signature'>): Checkpoint {
  return { ...c, signature: signer.sign(checkpointMessage(c)) };
}

/** Throws CryptoError when the checkpoint's signature does not verify with the gate's public key. */
export function verifyCheckpoint(c: Checkpoint, key: { suite: SuiteName; publicKey: Uint8Array }): void {
  let ok = false;
  try {
    ok = getSuite(key.suite).verify(key.publicKey, checkpointMessage(c), c.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new CryptoError(`checkpoint of gate ${c.gateId} at seq ${c.seq} does not verify with the gate's key`);
}

/**
 * Check that `records` (consecutive seqs of one gate, in order) are each linked to the one before and that the
 * last is the head `checkpoint` signed: then every record is as the gate wrote it. Throws CryptoError naming the
 * first break. Linking the first record to what came before (an earlier upload) is the caller's job.
 */
export function verifyChain(records: TapRecord[], checkpoint: Checkpoint): void {
  if (!records.length) throw new InvalidInputError('no records');
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (r.gateId !== checkpoint.gateId) throw new CryptoError(`record seq ${r.seq} is from gate ${r.gateId}, the checkpoint from ${checkpoint.gateId}`);
    if (i > 0) {
      if (r.seq !== records[i - 1].seq + 1) throw new CryptoError(`records are not consecutive: seq ${records[i - 1].seq} then ${r.seq}`);
      if (!equal(r.prev, records[i - 1].hash)) throw new CryptoError(`record seq ${r.seq} does not link to seq ${records[i - 1].seq}: the chain was altered`);
    }
  }
  const last = records[records.length - 1];
  if (last.seq !== checkpoint.seq || !equal(last.hash, checkpoint.head)) throw new CryptoError(`the checkpoint (seq ${checkpoint.seq}) is not the head of these records (last seq ${last.seq})`);
}

export function checkpointJson(c: Checkpoint): { gate: string; seq: number; head: string; time: number; signature: string } {
  return { gate: c.gateId, seq: c.seq, head: hex(c.head), time: c.time, signature: hex(c.signature) };
}
