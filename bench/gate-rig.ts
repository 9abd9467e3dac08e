// The benchmarks' gate: one card with a multi-entry ticket, passed in and out again by a checking
// terminal over any transport (in process or PC/SC), with an untimed refill when the ticket is used up.

import type { CheckingTerminal, GateMode } from '../host/checking.js';
import type { World } from '../testing/world.js';
import type { IssuingTerminal } from '../host/issuing.js';
import { CardSession, type TraceEntry } from '../host/session.js';
import type { Transport } from '../host/transport/transport.js';
import { toServiceDate } from '../sdk/fields.js';
import { encodeTicketFace, type TicketFace } from '../sdk/ticket.js';
import { timeCalls, timeOneWithCpu } from './stats.js';

export const STATION = 'BJS';
const MAX_ENTRIES = 255;
// Entry and exit alternate, so a ticket of 255 entries serves 2 × 250 taps with room to spare.
const PASSES_PER_TICKET = 2 * 250;

export class GateRig {
  readonly session: CardSession;
  readonly gate: CheckingTerminal;
  private readonly issuing: IssuingTerminal;
  private face: TicketFace | undefined;
  private passes = 0;
  private trace: TraceEntry[] | undefined;

  constructor(private readonly world: World, readonly transport: Transport, options: { mode: GateMode; extendedLength?: boolean }) {
    this.session = new CardSession(transport, { extendedLength: options.extendedLength, trace: (e) => this.trace?.push(e) });
    this.issuing = world.issuingTerminal(this.session);
    this.gate = world.checkingTerminal(this.session, { station: STATION, mode: options.mode });
  }

  /** Untimed: a fresh ticket when the current one is used up (delete it, load another). */
  async prepare(): Promise<void> {
    if (this.face && this.passes < PASSES_PER_TICKET) return;
    if (this.face) {
      await this.gate.select();
      await this.gate.deleteTicket(await this.gate.verifyTicket({ tid: this.face.tid }, { verificationCode: false }));
    }
    const w = this.world;
    // The clock moves a second per refill: once the card's tombstone table is full it refuses any ticket issued no
    // later than the oldest tombstone it drops (its replay floor), and with a frozen clock every face had the same
    // issuedAt (a long profile run failed with 9103 TICKET_REPLAYED after about 80 refills).
    w.now += 1;
    this.face = w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(w.now * 1000)), train: 'BENCH', origin: STATION, destination: STATION, maxEntries: MAX_ENTRIES });
    await this.issuing.open();
    await this.issuing.load(w.authority.issue(this.face, await this.issuing.credentials()).sealed);
    this.passes = 0;
  }

  /** One tap, entry and exit alternating; a refusal means the bench is broken, not slow. */
  async pass(): Promise<void> {
    const direction = this.passes % 2 === 0 ? 'entry' : 'exit';
    const r = await this.gate.passGate(direction, { train: 'BENCH' });
    if (!r.decision.pass) throw new Error(`bench gate refused the ${direction}: ${r.decision.message}`);
    this.passes++;
  }

  /** `n` timed taps (milliseconds each), refills untimed. */
  async time(n: number): Promise<number[]> {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      await this.prepare();
      samples.push(...(await timeCalls(1, () => this.pass())));
    }
    return samples;
  }

  /** `n` timed taps, wall and CPU milliseconds each (stats.ts timeOneWithCpu), refills untimed. */
  async timeWithCpu(n: number): Promise<{ wall: number[]; cpu: number[] }> {
    const out = { wall: [] as number[], cpu: [] as number[] };
    for (let i = 0; i < n; i++) {
      await this.prepare();
      const t = await this.timeOneWithCpu();
      out.wall.push(t.wall);
      out.cpu.push(t.cpu);
    }
    return out;
  }

  /** One timed tap, wall and CPU milliseconds, without a refill: call prepare() first. */
  timeOneWithCpu(): Promise<{ wall: number; cpu: number }> {
    return timeOneWithCpu(() => this.pass());
  }

  /** Bytes of the encoded face (A1) of the ticket in use, bound to the card: what the card hashes for DF20. */
  get faceBytes(): number | undefined {
    return this.face ? encodeTicketFace({ ...this.face, card: new Uint8Array(8) }).length : undefined;
  }

  /** One untimed tap with its APDU trace and the session's byte counters. */
  async traced(): Promise<{ trace: TraceEntry[]; apdus: number; bytes: number }> {
    await this.prepare();
    const before = { ...this.session.stats };
    this.trace = [];
    await this.pass();
    const trace = this.trace;
    this.trace = undefined;
    const s = this.session.stats;
    return { trace, apdus: s.apdus - before.apdus, bytes: s.bytesOut - before.bytesOut + s.bytesIn - before.bytesIn };
  }
}
