// The card session: written once above any Transport. Splits long commands (extended length or
// chaining, whichever the reader supports), collects 61XX / GET RESPONSE, retries 6CXX, types errors.

import { encodeCommand, parseResponse, swHex } from '../sdk/apdu.js';
import { concat, hex } from '../sdk/bytes.js';
import { CardStatusError, InvalidInputError } from '../sdk/errors.js';
import { AID, command as commandDef, commandForIns, describeSw, SW } from '../sdk/spec.js';
import type { Transport } from './transport/transport.js';

/** One APDU exchange as the session saw it (for traces and the cost model). */
export interface TraceEntry {
  /** Spec name of the command ("GET RESPONSE" for the session's own fetches). */
  command: string;
  apdu: Uint8Array;
  response: Uint8Array;
  sw: number;
  swName: string;
  ms: number;
}

/** Session options: a trace callback, and extended length or chaining. */
export interface SessionOptions {
  /** Called for every APDU exchanged (including GET RESPONSE and chained parts). */
  trace?: (entry: TraceEntry) => void;
  /** Use extended length when the command or response needs it; default: what the reader supports. */
  extendedLength?: boolean;
}

/** Parameters of one command sent by name. */
export interface SendOptions {
  p1?: number;
  p2?: number;
  data?: Uint8Array;
  /** Expected response length; default: as much as the card has (Le 00 / 0000). */
  ne?: number;
  /** Status words (besides 9000) returned to the caller instead of thrown. */
  accept?: number[];
}

/** A card session over any Transport: commands by their apdu-spec names, GET RESPONSE, 6CXX retry, chaining or extended length, typed errors. */
export class CardSession {
  readonly extended: boolean;
  private atrBytes: Uint8Array | null = null;
  /** Counts APDUs and bytes on the wire, for the cost model and the benchmark. */
  readonly stats = { apdus: 0, bytesOut: 0, bytesIn: 0 };

  constructor(readonly transport: Transport, private readonly options: SessionOptions = {}) {
    this.extended = options.extendedLength ?? transport.info.extendedLength;
  }

  /** The ATR of the connected card, or null before connect(). */
  get atr(): Uint8Array | null {
    return this.atrBytes;
  }

  /** Power the card through the transport; returns its ATR. */
  async connect(): Promise<Uint8Array> {
    this.atrBytes = await this.transport.connect();
    return this.atrBytes;
  }

  /** SELECT the e-ticket application; returns the FCI. */
  async select(): Promise<Uint8Array> {
    if (!this.atrBytes) await this.connect();
    return (await this.send('SELECT', { p1: 0x04, p2: 0x00, data: AID })).data;
  }

  /** Send a spec command by name; throws CardStatusError unless the SW is 9000 or accepted. */
  async send(name: string, opts: SendOptions = {}): Promise<{ data: Uint8Array; sw: number }> {
    const def = commandDef(name);
    const data = opts.data ?? new Uint8Array(0);
    const expectsData = /2|4/.test(def.case);
    const p1 = opts.p1 ?? parseInt(def.p1[0], 16);
    const p2 = opts.p2 ?? parseInt(def.p2[0], 16);
    let ne = opts.ne ?? (expectsData ? (this.extended ? 65536 : 256) : undefined);
    if (ne !== undefined && ne > 256 && !this.extended) ne = 256;

    let body = data;
    if (data.length > 255 && !this.extended) {
      // Command chaining: every part but the last carries CLA bit 0x10 and must be acknowledged 9000.
      const chunks: Uint8Array[] = [];
      for (let o = 0; o < data.length; o += 255) chunks.push(data.subarray(o, o + 255));
      body = chunks.pop()!;
      for (const chunk of chunks) {
        const r = await this.exchange(name, encodeCommand({ cla: def.claByte | 0x10, ins: def.insByte, p1, p2, data: chunk }));
        if (r.sw !== SW.SUCCESS) throw this.error(name, r.sw);
      }
    }
    const apdu = encodeCommand({ cla: def.claByte, ins: def.insByte, p1, p2, data: body, ne, extended: this.extended && (body.length > 255 || (ne ?? 0) > 256) });
    let r = await this.exchange(name, apdu);
    if ((r.sw & 0xff00) === SW.WRONG_LE_EXACT && name !== 'GET CHALLENGE') {
      r = await this.exchange(name, encodeCommand({ cla: def.claByte, ins: def.insByte, p1, p2, data: body, ne: (r.sw & 0xff) || 256 }));
    }
    const parts = [r.data];
    while ((r.sw & 0xff00) === SW.BYTES_REMAINING) {
      const want = this.extended ? 65536 : (r.sw & 0xff) || 256;
      r = await this.exchange('GET RESPONSE', encodeCommand({ cla: 0x00, ins: 0xc0, p1: 0, p2: 0, ne: want, extended: want > 256 }));
      parts.push(r.data);
    }
    if (r.sw !== SW.SUCCESS && !opts.accept?.includes(r.sw)) throw this.error(name, r.sw);
    return { data: concat(...parts), sw: r.sw };
  }

  /** Send raw bytes (CLI `apdu`), with GET RESPONSE handling but no error mapping. */
  async raw(apdu: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    if (apdu.length < 4) throw new InvalidInputError('an APDU has at least 4 bytes');
    const def = commandForIns(apdu[0], apdu[1]);
    const name = def?.name ?? `CLA ${hex(apdu.subarray(0, 1))} INS ${hex(apdu.subarray(1, 2))}`;
    let r = await this.exchange(name, apdu);
    const parts = [r.data];
    while ((r.sw & 0xff00) === SW.BYTES_REMAINING) {
      r = await this.exchange('GET RESPONSE', encodeCommand({ cla: 0x00, ins: 0xc0, p1: 0, p2: 0, ne: (r.sw & 0xff) || 256 }));
      parts.push(r.data);
    }
    return { data: concat(...parts), sw: r.sw };
  }

  private async exchange(name: string, apdu: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    const t0 = performance.now();
    const response = await this.transport.transmit(apdu);
    const ms = performance.now() - t0;
    const r = parseResponse(response);
    this.stats.apdus++;
    this.stats.bytesOut += apdu.length;
    this.stats.bytesIn += response.length;
    this.options.trace?.({ command: name, apdu, response, sw: r.sw, swName: describeSw(r.sw).name, ms });
    return r;
  }

  private error(name: string, sw: number): CardStatusError {
    const d = describeSw(sw);
    return new CardStatusError(name, sw, d.name, d.description);
  }

  /** Disconnect the transport (the card stays in the reader). */
  async close(): Promise<void> {
    await this.transport.disconnect();
    this.atrBytes = null;
  }
}

/** One readable line per exchange: command name, APDU, status word name. */
export function formatTrace(e: TraceEntry): string {
  return `${e.command.padEnd(13)} > ${hex(e.apdu)}\n${''.padEnd(13)} < ${hex(e.response.subarray(0, e.response.length - 2))} ${swHex(e.sw)} ${e.swName} (${e.ms.toFixed(2)} ms)`;
}
