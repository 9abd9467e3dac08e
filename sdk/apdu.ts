// ISO/IEC 7816-4 command and response APDUs: the four cases, short and extended length.
// parseCommand is what the card uses; encodeCommand is what the host uses; both are strict.

import { concat } from './bytes.js';
import { EticketError } from './errors.js';

/** A byte string that is not a well-formed APDU. */
export class ApduFormatError extends EticketError {}

export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data (Nc bytes); empty for cases 1 and 2. */
  data: Uint8Array;
  /** Expected response length Ne: undefined when absent (cases 1 and 3); 256 / 65536 for Le = 00 / 0000. */
  ne?: number;
  /** Whether the APDU was (or must be) encoded with extended length fields. */
  extended: boolean;
}

export interface ResponseApdu {
  data: Uint8Array;
  sw: number;
}

export const MAX_SHORT_NC = 255;
export const MAX_SHORT_NE = 256;
export const MAX_EXTENDED_NC = 65535;
export const MAX_EXTENDED_NE = 65536;

/** Decode a command APDU per ISO/IEC 7816-3 §12.1; any inconsistent length is an ApduFormatError. */
export function parseCommand(bytes: Uint8Array): CommandApdu {
  if (bytes.length < 4) throw new ApduFormatError(`APDU of ${bytes.length} bytes is shorter than its header`);
  const [cla, ins, p1, p2] = bytes;
  const body = bytes.subarray(4);
  const n = body.length;
  const base = { cla, ins, p1, p2 };
  if (n === 0) return { ...base, data: new Uint8Array(0), extended: false }; // case 1
  if (n === 1) return { ...base, data: new Uint8Array(0), ne: body[0] || 256, extended: false }; // case 2S
  if (body[0] !== 0) {
    const nc = body[0];
    if (n === 1 + nc) return { ...base, data: body.subarray(1), extended: false }; // case 3S
    if (n === 2 + nc) return { ...base, data: body.subarray(1, 1 + nc), ne: body[1 + nc] || 256, extended: false }; // 4S
    throw new ApduFormatError(`Lc=${nc} does not match ${n - 1} bytes of body`);
  }
  // body[0] === 0 and n > 1: extended
  if (n === 3) {
    const ne = (body[1] << 8) | body[2];
    return { ...base, data: new Uint8Array(0), ne: ne || 65536, extended: true }; // case 2E
  }
  if (n < 3) throw new ApduFormatError('truncated extended length field');
  const nc = (body[1] << 8) | body[2];
  if (nc === 0) throw new ApduFormatError('extended Lc of zero');
  if (n === 3 + nc) return { ...base, data: body.subarray(3), extended: true }; // case 3E
  if (n === 5 + nc) {
    const ne = (body[3 + nc] << 8) | body[4 + nc];
    return { ...base, data: body.subarray(3, 3 + nc), ne: ne || 65536, extended: true }; // case 4E
  }
  throw new ApduFormatError(`extended Lc=${nc} does not match ${n - 3} bytes of body`);
}

/** Encode a command APDU, choosing extended length only when required or asked for. */
export function encodeCommand(c: {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  ne?: number;
  extended?: boolean;
}): Uint8Array {
  const data = c.data ?? new Uint8Array(0);
  for (const [k, v] of [['CLA', c.cla], ['INS', c.ins], ['P1', c.p1], ['P2', c.p2]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new ApduFormatError(`${k} out of range: ${v}`);
  }
  const ext = c.extended || data.length > MAX_SHORT_NC || (c.ne !== undefined && c.ne > MAX_SHORT_NE);
  if (data.length > MAX_EXTENDED_NC) throw new ApduFormatError(`command data of ${data.length} bytes exceeds 65535`);
  if (c.ne !== undefined && (c.ne < 1 || c.ne > MAX_EXTENDED_NE)) throw new ApduFormatError(`Ne out of range: ${c.ne}`);
  const header = new Uint8Array([c.cla, c.ins, c.p1, c.p2]);
  if (!ext) {
    const lc = data.length ? new Uint8Array([data.length]) : new Uint8Array(0);
    const le = c.ne !== undefined ? new Uint8Array([c.ne & 0xff]) : new Uint8Array(0);
    return concat(header, lc, data, le);
  }
  const lc = data.length ? new Uint8Array([0, data.length >>> 8, data.length & 0xff]) : new Uint8Array(0);
  let le = new Uint8Array(0);
  if (c.ne !== undefined) {
    const v = c.ne & 0xffff;
    le = data.length ? new Uint8Array([v >>> 8, v & 0xff]) : new Uint8Array([0, v >>> 8, v & 0xff]);
  }
  return concat(header, lc, data, le);
}

export function parseResponse(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) throw new ApduFormatError(`response of ${bytes.length} bytes has no status word`);
  return { data: bytes.subarray(0, bytes.length - 2), sw: (bytes[bytes.length - 2] << 8) | bytes[bytes.length - 1] };
}

export function encodeResponse(data: Uint8Array, sw: number): Uint8Array {
  return concat(data, new Uint8Array([sw >>> 8, sw & 0xff]));
}

export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

