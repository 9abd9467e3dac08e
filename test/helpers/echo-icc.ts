// A minimal Icc for transport and bridge tests: one selectable AID, echo, long responses, a volatile
// counter that power/reset clears, and a command that blocks the card so a test can pull it mid-exchange.

import type { Icc } from '../../sdk/icc.js';

/** The one AID this card answers 9000 to; every other SELECT gets 6A82 (opensc probes with SELECTs). */
export const ECHO_AID = Uint8Array.from([0xf0, 0x45, 0x54, 0x49, 0x43, 0x4b, 0x45, 0x54]); // F0 "ETICKET"

/** Proprietary instructions (CLA 0x80). */
export const INS = {
  /** Returns the command data. */
  ECHO: 0x10,
  /** Returns Ne bytes counting from 0 (mod 256): Le 00 short = 256, extended up to 65533. */
  LONG: 0x20,
  /** Returns the volatile counter (2 bytes) and increments it. */
  COUNT: 0x30,
  /** Blocks the card for P1P2 milliseconds, then answers 9000. */
  SLEEP: 0x50,
} as const;

export interface EchoIccOptions {
  /** Historical bytes of the ATR (ASCII), so two cards can be told apart. Max 15. */
  name?: string;
}

/** ATR for T=1 with `historical` as historical bytes: TS T0 TD1(T=0 next) TD2(T=1) hist TCK. */
export function buildAtr(historical: Uint8Array): Uint8Array {
  if (historical.length > 15) throw new RangeError('at most 15 historical bytes');
  const body = [0x80 | historical.length, 0x80, 0x01, ...historical];
  const tck = body.reduce((a, b) => a ^ b, 0);
  return Uint8Array.from([0x3b, ...body, tck]);
}

interface Apdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data: Uint8Array;
  /** Expected response length; 0 when absent. */
  ne: number;
}

function parseApdu(c: Uint8Array): Apdu | undefined {
  if (c.length < 4) return undefined;
  const [cla, ins, p1, p2] = [c[0]!, c[1]!, c[2]!, c[3]!];
  const empty = new Uint8Array(0);
  if (c.length === 4) return { cla, ins, p1, p2, data: empty, ne: 0 };
  const b4 = c[4]!;
  if (c.length === 5) return { cla, ins, p1, p2, data: empty, ne: b4 === 0 ? 256 : b4 };
  if (b4 !== 0) {
    const data = c.subarray(5, 5 + b4);
    if (c.length === 5 + b4) return { cla, ins, p1, p2, data, ne: 0 };
    if (c.length === 6 + b4) return { cla, ins, p1, p2, data, ne: c[5 + b4]! === 0 ? 256 : c[5 + b4]! };
    return undefined;
  }
  if (c.length === 7) {
    const le = (c[5]! << 8) | c[6]!;
    return { cla, ins, p1, p2, data: empty, ne: le === 0 ? 65536 : le };
  }
  const lc = (c[5]! << 8) | c[6]!;
  if (lc === 0) return undefined;
  const data = c.subarray(7, 7 + lc);
  if (c.length === 7 + lc) return { cla, ins, p1, p2, data, ne: 0 };
  if (c.length === 9 + lc) {
    const le = (c[7 + lc]! << 8) | c[8 + lc]!;
    return { cla, ins, p1, p2, data, ne: le === 0 ? 65536 : le };
  }
  return undefined;
}

const sw = (word: number, data: ArrayLike<number> = []): Uint8Array => {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out[data.length] = word >> 8;
  out[data.length + 1] = word & 0xff;
  return out;
};

export class EchoIcc implements Icc {
  private readonly atrBytes: Uint8Array;
  private selected = false;
  private counter = 0;

  constructor(options: EchoIccOptions = {}) {
    this.atrBytes = buildAtr(new TextEncoder().encode(options.name ?? 'ECHO'));
  }

  atr(): Uint8Array {
    return this.atrBytes.slice();
  }
  powerOn(): void {
    this.clear();
  }
  powerOff(): void {
    this.clear();
  }
  reset(): void {
    this.clear();
  }

  transmit(command: Uint8Array): Uint8Array {
    const apdu = parseApdu(command);
    if (!apdu) return sw(0x6700);
    if (apdu.cla === 0x00 && apdu.ins === 0xa4) {
      if (apdu.p1 !== 0x04) return sw(0x6a86);
      this.selected = apdu.data.length === ECHO_AID.length && apdu.data.every((b, i) => b === ECHO_AID[i]);
      return sw(this.selected ? 0x9000 : 0x6a82);
    }
    if (apdu.cla !== 0x80) return sw(0x6e00);
    switch (apdu.ins) {
      case INS.ECHO:
        return sw(0x9000, apdu.data);
      case INS.LONG: {
        const n = Math.min(apdu.ne, 0xffff - 2);
        return sw(0x9000, Array.from({ length: n }, (_, i) => i & 0xff));
      }
      case INS.COUNT: {
        const value = this.counter++;
        return sw(0x9000, [value >> 8, value & 0xff]);
      }
      case INS.SLEEP: {
        // Block the whole thread, as a card busy computing would block its reader.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, (apdu.p1 << 8) | apdu.p2);
        return sw(0x9000);
      }
      default:
        return sw(0x6d00);
    }
  }

  private clear(): void {
    this.selected = false;
    this.counter = 0;
  }
}

/** Factory in the shape vpcd-child expects: an exported function returning an Icc. */
export function createEchoIcc(options: EchoIccOptions = {}): Icc {
  return new EchoIcc(options);
}
