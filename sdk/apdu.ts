// ISO/IEC 7816-4 command and response APDUs: the four cases, short and extended length.
// parseCommand is what the card uses; encodeCommand is what the host uses; both are strict.

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

const NO_DATA = new Uint8Array(0);

/** Decode a command APDU per ISO/IEC 7816-3 §12.1; any inconsistent length is an ApduFormatError. */
export function parseCommand(bytes: Uint8Array): CommandApdu {
  const n = bytes.length - 4;
  if (n < 0) throw new ApduFormatError(`APDU of ${bytes.length} bytes is shorter than its header`);
  // Indexed reads, not destructuring: a Uint8Array destructures through the iterator protocol, on every APDU.
  const cla = bytes[0];
  const ins = bytes[1];
  const p1 = bytes[2];
  const p2 = bytes[3];
  if (n === 0) return { cla, ins, p1, p2, data: NO_DATA, ne: undefined, extended: false }; // case 1
  const b0 = bytes[4];
  if (n === 1) return { cla, ins, p1, p2, data: NO_DATA, ne: b0 || 256, extended: false }; // case 2S
  if (b0 !== 0) {
    if (n === 1 + b0) return { cla, ins, p1, p2, data: bytes.subarray(5), ne: undefined, extended: false }; // case 3S
    if (n === 2 + b0) return { cla, ins, p1, p2, data: bytes.subarray(5, 5 + b0), ne: bytes[5 + b0] || 256, extended: false }; // 4S
    throw new ApduFormatError(`Lc=${b0} does not match ${n - 1} bytes of body`);
  }
  // b0 === 0 and n > 1: extended
  if (n === 3) return { cla, ins, p1, p2, data: NO_DATA, ne: ((bytes[5] << 8) | bytes[6]) || 65536, extended: true }; // case 2E
  if (n < 3) throw new ApduFormatError('truncated extended length field');
  const nc = (bytes[5] << 8) | bytes[6];
  if (nc === 0) throw new ApduFormatError('extended Lc of zero');
  if (n === 3 + nc) return { cla, ins, p1, p2, data: bytes.subarray(7), ne: undefined, extended: true }; // case 3E
  if (n === 5 + nc) return { cla, ins, p1, p2, data: bytes.subarray(7, 7 + nc), ne: ((bytes[7 + nc] << 8) | bytes[8 + nc]) || 65536, extended: true }; // case 4E
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
  const data = c.data ?? NO_DATA;
  checkByte('CLA', c.cla);
  checkByte('INS', c.ins);
  checkByte('P1', c.p1);
  checkByte('P2', c.p2);
  const nc = data.length;
  const ext = c.extended || nc > MAX_SHORT_NC || (c.ne !== undefined && c.ne > MAX_SHORT_NE);
  if (nc > MAX_EXTENDED_NC) throw new ApduFormatError(`command data of ${nc} bytes exceeds 65535`);
  if (c.ne !== undefined && (c.ne < 1 || c.ne > MAX_EXTENDED_NE)) throw new ApduFormatError(`Ne out of range: ${c.ne}`);
  // Sized first, written once: Lc is 1 or 3 bytes (none without data), Le 1, 2 or 3 (none when absent).
  const lcBytes = nc === 0 ? 0 : ext ? 3 : 1;
  const leBytes = c.ne === undefined ? 0 : !ext ? 1 : nc ? 2 : 3;
  const out = new Uint8Array(4 + lcBytes + nc + leBytes);
  out[0] = c.cla;
  out[1] = c.ins;
  out[2] = c.p1;
  out[3] = c.p2;
  let o = 4;
  if (lcBytes === 1) out[o++] = nc;
  else if (lcBytes === 3) {
    out[o++] = 0;
    out[o++] = nc >>> 8;
    out[o++] = nc & 0xff;
  }
  out.set(data, o);
  o += nc;
  if (c.ne !== undefined) {
    const v = c.ne & 0xffff;
    if (leBytes === 1) out[o] = v & 0xff;
    else {
      if (leBytes === 3) out[o++] = 0;
      out[o++] = v >>> 8;
      out[o] = v & 0xff;
    }
  }
  return out;
}

function checkByte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new ApduFormatError(`${name} out of range: ${v}`);
}

export function parseResponse(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) throw new ApduFormatError(`response of ${bytes.length} bytes has no status word`);
  return { data: bytes.subarray(0, bytes.length - 2), sw: (bytes[bytes.length - 2] << 8) | bytes[bytes.length - 1] };
}

export function encodeResponse(data: Uint8Array, sw: number): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data, 0);
  out[data.length] = sw >>> 8;
  out[data.length + 1] = sw & 0xff;
  return out;
}

export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

