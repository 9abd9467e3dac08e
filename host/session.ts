// The card session: written once above any Transport, as a stack of small decorators (host/channel/):
// chaining or extended length, 6CXX retry, GET RESPONSE, bounds and a deadline, tracing; then typed errors.

import { encodeCommand, parseResponse, swHex } from '../sdk/apdu.js';
import { hex } from '../sdk/bytes.js';
import { CardStatusError, InvalidInputError } from '../sdk/errors.js';
import { AID, command as commandDef, commandForIns, describeSw, SW } from '../sdk/spec.js';
import { SELECT_P2 } from '../sdk/commands/select.js';
import { newCommandContext, type Transceive } from './channel/channel.js';
import { channelStack } from './channel/stack.js';
import type { TraceEntry } from './channel/tracing.js';
import type { Transport } from './transport/transport.js';

export type { TraceEntry };

/**
 * A command's default deadline: generous, because personalisation (on-card RSA key generation) is slow on
 * real chips. Gates set their own, much shorter (CheckingTerminalConfig.commandDeadlineMs).
 */
export const DEFAULT_COMMAND_DEADLINE_MS = 60_000;

/** Session options: a trace callback, and extended length or chaining. */
export interface SessionOptions {
  /** Called for every APDU exchanged (including GET RESPONSE and chained parts). */
  trace?: (entry: TraceEntry) => void;
  /** Use extended length when the command or response needs it; default: what the reader supports. */
  extendedLength?: boolean;
  /** No further exchange of a command starts after this many ms (default DEFAULT_COMMAND_DEADLINE_MS). */
  commandDeadlineMs?: number;
  /** GET RESPONSE rounds per command (default: apdu-spec limits.maxGetResponseRounds). */
  maxGetResponseRounds?: number;
  /** Response data bytes per command (default: apdu-spec limits.maxResponseData). */
  maxResponseData?: number;
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
  /** This command's deadline in ms, instead of the session's. */
  deadlineMs?: number;
}

/** What every APDU of one spec command starts from, read from the spec once per command name. */
const headers = new Map<string, { cla: number; ins: number; p1: number; p2: number; expectsData: boolean }>();
function header(name: string) {
  let h = headers.get(name);
  if (!h) {
    const def = commandDef(name);
    h = { cla: def.claByte, ins: def.insByte, p1: parseInt(def.p1[0], 16), p2: parseInt(def.p2[0], 16), expectsData: /2|4/.test(def.case) };
    headers.set(name, h);
  }
  return h;
}

/** A card session over any Transport: commands by their apdu-spec names, GET RESPONSE, 6CXX retry, chaining or extended length, typed errors. */
export class CardSession {
  readonly extended: boolean;
  private atrBytes: Uint8Array | null = null;
  /** Counts APDUs and bytes on the wire, for the cost model and the benchmark. */
  readonly stats = { apdus: 0, bytesOut: 0, bytesIn: 0 };
  private readonly channel: Transceive;
  /** For raw(): bytes as given, GET RESPONSE for what the card announces, no retry. */
  private readonly rawChannel: Transceive;
  private readonly deadlineMs: number;

  constructor(readonly transport: Transport, private readonly options: SessionOptions = {}) {
    this.extended = options.extendedLength ?? transport.info.extendedLength;
    this.deadlineMs = options.commandDeadlineMs ?? DEFAULT_COMMAND_DEADLINE_MS;
    const onExchange = (e: TraceEntry) => {
      this.stats.apdus++;
      this.stats.bytesOut += e.apdu.length;
      this.stats.bytesIn += e.response.length;
      this.options.trace?.(e);
    };
    const bounds = { maxGetResponseRounds: options.maxGetResponseRounds, maxResponseData: options.maxResponseData };
    this.channel = channelStack(transport, { ...bounds, extended: this.extended, onExchange });
    this.rawChannel = channelStack(transport, { ...bounds, extended: this.extended, onExchange, chain: false, retryWrongLe: false, shortGetResponse: true });
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
    return (await this.send('SELECT', { p1: 0x04, p2: SELECT_P2.FCI, data: AID })).data;
  }

  /** Send a spec command by name; throws CardStatusError unless the SW is 9000 or accepted. */
  async send(name: string, opts: SendOptions = {}): Promise<{ data: Uint8Array; sw: number }> {
    const r = await this.transmit(name, opts);
    if (r.sw !== SW.SUCCESS && !opts.accept?.includes(r.sw)) {
      const d = describeSw(r.sw);
      throw new CardStatusError(name, r.sw, d.name, d.description);
    }
    return r;
  }

  /** Send a spec command by name and return its answer whatever the status word (bounds still apply). */
  async transmit(name: string, opts: SendOptions = {}): Promise<{ data: Uint8Array; sw: number }> {
    const def = header(name);
    let ne = opts.ne ?? (def.expectsData ? (this.extended ? 65536 : 256) : undefined);
    if (ne !== undefined && ne > 256 && !this.extended) ne = 256;
    const apdu = encodeCommand({ cla: def.cla, ins: def.ins, p1: opts.p1 ?? def.p1, p2: opts.p2 ?? def.p2, data: opts.data, ne });
    return parseResponse(await this.channel(apdu, newCommandContext(name, opts.deadlineMs ?? this.deadlineMs)));
  }

  /** Send raw bytes (CLI `apdu`), with GET RESPONSE handling but no error mapping. */
  async raw(apdu: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    if (apdu.length < 4) throw new InvalidInputError('an APDU has at least 4 bytes');
    const def = commandForIns(apdu[0], apdu[1]);
    const name = def?.name ?? `CLA ${hex(apdu.subarray(0, 1))} INS ${hex(apdu.subarray(1, 2))}`;
    return parseResponse(await this.rawChannel(apdu, newCommandContext(name, this.deadlineMs)));
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
