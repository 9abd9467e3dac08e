// The query READ and VERIFY share (patent 621-622, 631-635): which terminal key asks, its challenge, and the
// criteria (TID, service date, train, station). read.ts and verify.ts say which fields each command takes.

import { readUint, u32, utf8 } from '../bytes.js';
import { decodeSequenceField, specField, textField } from '../fields.js';
import { T } from '../spec.js';
import { putTlv, TlvError, TlvMap, tlvSize } from '../tlv.js';

export interface QueryFields {
  /** C1: the terminal key (pki) or master key (sym) the card must answer to. */
  keyId: Uint8Array;
  /** C4: echoed inside the view, so a recorded answer cannot be replayed to this terminal. */
  terminalChallenge?: Uint8Array;
  tid?: string;
  /** C2: YYYYMMDD. */
  date?: number;
  train?: string;
  station?: string;
}

/**
 * Every text criterion may be up to 32 bytes (a TID's length), whatever its tag: a train or station longer
 * than any ticket holds matches nothing, it is not malformed.
 */
const CRITERION_MAX = 32;

const KEY_ID = specField('keyId', 'KEY_ID');
const TERMINAL_CHALLENGE = specField('terminalChallenge', 'TERMINAL_CHALLENGE');
const SERVICE_DATE = specField('date', 'SERVICE_DATE');

/** C1, [C4], [C5], [C2], [C3], [CD]: the order terminals send (the card reads the fields in any order). Sized first, written once. */
export function encodeQuery(q: QueryFields): Uint8Array {
  const tid = q.tid === undefined ? undefined : utf8(q.tid);
  const train = q.train === undefined ? undefined : utf8(q.train);
  const station = q.station === undefined ? undefined : utf8(q.station);
  const out = new Uint8Array(
    tlvSize(T.KEY_ID, q.keyId.length) +
      (q.terminalChallenge ? tlvSize(T.TERMINAL_CHALLENGE, q.terminalChallenge.length) : 0) +
      (tid ? tlvSize(T.TID, tid.length) : 0) +
      (q.date !== undefined ? tlvSize(T.SERVICE_DATE, 4) : 0) +
      (train ? tlvSize(T.TRAIN, train.length) : 0) +
      (station ? tlvSize(T.STATION, station.length) : 0),
  );
  let o = putTlv(out, 0, T.KEY_ID, q.keyId);
  if (q.terminalChallenge) o = putTlv(out, o, T.TERMINAL_CHALLENGE, q.terminalChallenge);
  if (tid) o = putTlv(out, o, T.TID, tid);
  if (q.date !== undefined) o = putTlv(out, o, T.SERVICE_DATE, u32(q.date));
  if (train) o = putTlv(out, o, T.TRAIN, train);
  if (station) putTlv(out, o, T.STATION, station);
  return out;
}

/** The card's side: only `allowed` tags, each once; C1 always; C4 when `challengeRequired` or present. Throws TlvError. */
export function decodeQuery(data: Uint8Array, allowed: readonly number[], challengeRequired: boolean): QueryFields {
  const m = TlvMap.parse(data, { allowed });
  const text = (tag: number, what: string) => {
    const v = m.get(tag);
    if (v === undefined) return undefined;
    if (v.length < 1 || v.length > CRITERION_MAX) throw new TlvError(`${what}: ${v.length} bytes, expected 1..${CRITERION_MAX}`);
    return textField(v, what);
  };
  return {
    keyId: decodeSequenceField(KEY_ID, m.require(T.KEY_ID, 'key id')) as Uint8Array,
    terminalChallenge: challengeRequired || m.has(T.TERMINAL_CHALLENGE) ? (decodeSequenceField(TERMINAL_CHALLENGE, m.require(T.TERMINAL_CHALLENGE, 'terminal challenge')) as Uint8Array) : undefined,
    tid: text(T.TID, 'TID'),
    date: m.has(T.SERVICE_DATE) ? readUint(m.bytes(T.SERVICE_DATE, SERVICE_DATE.min, SERVICE_DATE.max, 'service date')) : undefined,
    train: text(T.TRAIN, 'train'),
    station: text(T.STATION, 'station'),
  };
}
