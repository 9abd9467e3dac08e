// The PC/SC transport: drives a card in any reader pcscd knows (real readers, or vpcd's virtual ones) via
// npm `pcsclite`, run in a child process (the PC/SC agent) so no native call can block this event loop.

import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  CardRemovedError,
  InvalidInputError,
  ReaderNotFoundError,
  TransportError,
  TransportTimeoutError,
  TransportUnavailableError,
} from '../../sdk/errors.js';
import type { CardEvent, Transport, TransportInfo } from './transport.js';

// Why a child process and not the binding in this process, or in a worker thread: a PC/SC call stuck in a
// frozen pcscd (a virtual card that stopped answering freezes its reader for every client) never returns.
// pcsclite runs SCardEstablishContext synchronously on the calling thread, and a reader's close() takes a
// lock that a stuck SCardConnect/SCardTransmit holds on a libuv pool thread; worse, Node joins its pool and
// worker threads at exit, so even process.exit() waits for the stuck call. Only a process can be killed
// whatever its threads do. The agent (pcsc-agent.cjs) holds the native contexts; this module keeps every
// deadline with its own timers, and kills an agent that has a call stuck in it.

// Constants from <PCSC/pcsclite.h>; fixed by the PC/SC specification, the same on every platform we build for.
const SCARD_SHARE_EXCLUSIVE = 1;
const SCARD_SHARE_SHARED = 2;
const SCARD_PROTOCOL_T0 = 1;
const SCARD_PROTOCOL_T1 = 2;
const SCARD_LEAVE_CARD = 0;
const SCARD_RESET_CARD = 1;
const SCARD_UNPOWER_CARD = 2;
const SCARD_STATE_PRESENT = 0x20;
const SCARD_STATE_MUTE = 0x200;

const HOW_TO_INSTALL =
  'install the PC/SC stack and build the optional binding: `apt-get install libpcsclite-dev pcscd` ' +
  '(plus vsmartcard-vpcd for virtual cards), then `npm_config_nodedir=$(dirname $(dirname $(which node))) npm rebuild pcsclite` ' +
  '(or `npm install pcsclite` if it is missing)';

/** Fail early, without loading any native code here, when npm pcsclite is not installed at all. */
function requireBindingInstalled(): void {
  try {
    createRequire(import.meta.url).resolve('pcsclite');
  } catch (cause) {
    throw new TransportUnavailableError(`PC/SC binding (npm pcsclite) not installed: ${HOW_TO_INSTALL}`, undefined, { cause });
  }
}

/** Transmission protocol to negotiate with the card. */
export type PcscProtocol = 'T=0' | 'T=1' | 'any';
/** Whether other PC/SC programs may use the card while this transport is connected. */
export type PcscShareMode = 'shared' | 'exclusive';
/** What happens to the card at disconnect. */
export type PcscDisposition = 'leave' | 'reset' | 'unpower';

/** How the PC/SC agent process is started. Agents with the same options are shared within a process. */
export interface PcscAgentOptions {
  /**
   * Extra environment for the agent, e.g. `PCSCLITE_CSOCK_NAME` (libpcsclite's own variable) to talk to
   * another pcscd socket.
   */
  env?: Record<string, string>;
}

/** Reader, protocol, sharing, time limits and APDU sizes of a PcscTransport. */
export interface PcscTransportOptions {
  /** Reader name: exact, or a substring matching exactly one reader. Default: the first reader with a card, else the first. */
  reader?: string;
  /** Protocol to negotiate; 'any' lets the reader choose (T=1 preferred by pcscd when both are offered). Default 'any'. */
  protocol?: PcscProtocol;
  /** 'shared' lets other programs (opensc-tool, scriptor) talk to the card between our commands. Default 'shared'. */
  shareMode?: PcscShareMode;
  /** What disconnect() does to the card. Default 'leave'. */
  disposition?: PcscDisposition;
  /**
   * Whether the reader passes extended-length APDUs. vpcd does (its frames carry up to 65535 bytes), as do
   * most CCID readers in TPDU/extended APDU mode; short-APDU-only readers need `false`. Default true.
   */
  extendedLength?: boolean;
  /** Receive buffer for one response, SW included. Default 65538 with extended length, else 258. */
  maxResponse?: number;
  /** Upper bound on any one PC/SC operation (connect, transmit, reset, disconnect). Default 10 000 ms. */
  timeoutMs?: number;
  /**
   * After a failed exchange that may be a pulled card, how long to wait for the reader to report it gone
   * (pcscd polls about every 400 ms) before calling it a plain transport fault. Default 1500 ms.
   */
  removalTimeoutMs?: number;
  /**
   * How long to wait for the PC/SC context and pcscd's first reader list. Default 10000 ms: it includes starting
   * a fresh PC/SC agent process, which took over 3 s on a loaded 2-core machine (a stuck pcscd still fails).
   */
  readerListTimeoutMs?: number;
  /** How the PC/SC agent (the child process that holds pcsclite) is started. Default: no extra environment. */
  agent?: PcscAgentOptions;
}

/** A reader pcscd knows, and whether a card is in it. */
export interface PcscReaderStatus {
  name: string;
  cardPresent: boolean;
  atr?: Uint8Array;
}

const PROTOCOL_BITS: Record<PcscProtocol, number> = {
  'T=0': SCARD_PROTOCOL_T0,
  'T=1': SCARD_PROTOCOL_T1,
  any: SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
};
const DISPOSITION: Record<PcscDisposition, number> = {
  leave: SCARD_LEAVE_CARD,
  reset: SCARD_RESET_CARD,
  unpower: SCARD_UNPOWER_CARD,
};

// PC/SC return codes that mean the card is no longer there to talk to.
const REMOVED_CODES = new Set([0x80100069 /* W_REMOVED_CARD */, 0x8010000c /* E_NO_SMARTCARD */, 0x80100067 /* W_UNPOWERED_CARD */]);
// Codes a pulled card often produces, but so can a flaky reader: confirmed by the reader's presence state.
const MAYBE_REMOVED_CODES = new Set([
  0x80100016 /* E_NOT_TRANSACTED */, 0x8010002f /* E_COMM_DATA_LOST */, 0x80100066 /* W_UNRESPONSIVE_CARD */,
  0x80100017 /* E_READER_UNAVAILABLE */,
]);
const SERVICE_CODES = new Set([0x8010001d /* E_NO_SERVICE */, 0x8010001e /* E_SERVICE_STOPPED */]);
const READER_CODES = new Set([0x80100009 /* E_UNKNOWN_READER */, 0x8010002e /* E_NO_READERS_AVAILABLE */]);

/** The PC/SC return code inside a pcsclite error message ("SCardTransmit error: ...(0x80100069)"). */
export function pcscErrorCode(error: unknown): number | undefined {
  const match = /\(0x([0-9a-f]{8})\)\s*$/i.exec(error instanceof Error ? error.message : String(error));
  return match ? Number.parseInt(match[1]!, 16) : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Resolve a reader by exact name, else by a substring that matches exactly one reader. */
export function matchReader(names: readonly string[], wanted: string): string {
  if (names.includes(wanted)) return wanted;
  const hits = names.filter((n) => n.includes(wanted));
  if (hits.length === 1) return hits[0]!;
  const known = names.length ? names.map((n) => `"${n}"`).join(', ') : 'none';
  if (hits.length === 0) throw new ReaderNotFoundError(`no PC/SC reader matches "${wanted}" (readers: ${known})`, wanted);
  throw new ReaderNotFoundError(`"${wanted}" matches several PC/SC readers (${hits.map((n) => `"${n}"`).join(', ')}): be more specific`, wanted);
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// --- the agent: one child process holding native PC/SC contexts ---

/** What the parent asks of the agent (pcsc-agent.cjs); bytes travel as hex. */
type AgentRequest =
  | { op: 'open'; ctx: number }
  | { op: 'connect'; ctx: number; reader: string; share: number; protocol: number }
  | { op: 'transmit'; ctx: number; reader: string; data: string; max: number; protocol: number }
  | { op: 'disconnect'; ctx: number; reader: string; disposition: number };
/** Events the agent reports about one context; 'gone' is ours, when the agent process ended. */
type ContextEvent =
  | { ev: 'list'; ctx: number; names?: string[]; message?: string }
  | { ev: 'status'; ctx: number; reader: string; state: number; atr?: string }
  | { ev: 'end'; ctx: number; reader: string }
  | { ev: 'gone'; message: string };
type AgentMessage =
  | { ev: 'hello'; ok: boolean; message?: string }
  | Exclude<ContextEvent, { ev: 'gone' }>
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; message: string };

const AGENT_SCRIPT = fileURLToPath(new URL('./pcsc-agent.cjs', import.meta.url));
// Enough pool threads in the agent that a few calls stuck in pcscd do not starve the healthy ones.
const AGENT_POOL_THREADS = '16';
/** An agent nobody has used for this long ends; the next context starts a new one (~0.1 s). */
const AGENT_IDLE_MS = 30_000;

/**
 * One agent process. Shared by every context opened with the same options until a call gets stuck in it:
 * it is then retired (new contexts go to a fresh agent) and killed once its last context is closed.
 */
class PcscAgent {
  private static readonly current = new Map<string, PcscAgent>();
  private static readonly alive = new Set<PcscAgent>();

  /** The agent for these options, started on first use. */
  static for(options: PcscAgentOptions = {}): PcscAgent {
    const key = JSON.stringify(options.env ?? {});
    let agent = PcscAgent.current.get(key);
    if (!agent || agent.retired || agent.ended) {
      agent = new PcscAgent(options, key);
      PcscAgent.current.set(key, agent);
    }
    return agent;
  }

  /** @internal Process ids of agents still running (tests check that a stuck agent was killed). */
  static pids(): number[] {
    return [...PcscAgent.alive].map((a) => a.child.pid).filter((pid): pid is number => pid !== undefined);
  }

  private readonly child: ChildProcess;
  private readonly hello: Promise<void>;
  private nextId = 1;
  private nextContext = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private readonly contexts = new Map<number, (event: ContextEvent) => void>();
  private retired = false;
  private ended: string | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  private constructor(options: PcscAgentOptions, private readonly key: string) {
    // The agent needs no secret of ours: the passphrases (ETICKET_PASSPHRASE, ETICKET_GATE_PASSPHRASE,
    // ETICKET_CLIENT_PASSPHRASE), the database URL and every other ETICKET_ variable stay out of its environment.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ETICKET_')));
    this.child = fork(AGENT_SCRIPT, [], {
      // Plain node: no tsx or other loaders from this process (the agent is JavaScript), no test runner hooks.
      // --expose-gc: npm pcsclite releases a PC/SC context only when its object is collected (close() does not);
      // the agent collects after closing contexts, or pcscd runs out of contexts for it (see pcsc-agent.cjs).
      execArgv: ['--expose-gc'],
      env: { ...env, NODE_OPTIONS: '', UV_THREADPOOL_SIZE: AGENT_POOL_THREADS, ...options.env },
      serialization: 'json',
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    PcscAgent.alive.add(this);
    let helloOk: () => void = () => undefined;
    let helloFail: (error: Error) => void = () => undefined;
    this.hello = new Promise<void>((resolve, reject) => {
      helloOk = resolve;
      helloFail = reject;
    });
    this.hello.catch(() => undefined);
    this.child.on('message', (m: AgentMessage) => {
      if ('id' in m) {
        const waiter = this.pending.get(m.id);
        if (!waiter) return;
        this.pending.delete(m.id);
        this.updateRef();
        if (m.ok) waiter.resolve(m.value);
        else waiter.reject(new Error(m.message));
      } else if (m.ev === 'hello') {
        if (m.ok) helloOk();
        else {
          helloFail(new TransportUnavailableError(`PC/SC binding (npm pcsclite) unavailable (${m.message}): ${HOW_TO_INSTALL}`));
          this.retire();
        }
      } else {
        this.contexts.get(m.ctx)?.(m);
      }
    });
    // A failed fork surfaces as 'error' (and then 'exit'); without a listener it would crash the caller.
    this.child.on('error', () => undefined);
    this.child.on('exit', (code, signal) => {
      this.ended = `PC/SC agent process ended (${signal ?? `code ${code}`})`;
      PcscAgent.alive.delete(this);
      if (PcscAgent.current.get(this.key) === this) PcscAgent.current.delete(this.key);
      const error = new TransportUnavailableError(this.ended);
      helloFail(error);
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
      for (const listener of this.contexts.values()) listener({ ev: 'gone', message: this.ended });
      this.contexts.clear();
    });
    this.updateRef();
  }

  /** Send one request; resolves with the agent's answer. Deadlines are the caller's (see PcscTransport.bounded). */
  async request(request: AgentRequest): Promise<unknown> {
    await this.hello;
    if (this.ended) throw new TransportUnavailableError(this.ended);
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.updateRef();
      try {
        this.child.send({ id, ...request });
      } catch (error) {
        this.pending.delete(id);
        this.updateRef();
        reject(new TransportUnavailableError(`PC/SC agent unreachable: ${errorMessage(error)}`, undefined, { cause: error }));
      }
    });
  }

  openContext(listener: (event: ContextEvent) => void): number {
    const id = this.nextContext++;
    if (this.ended) queueMicrotask(() => listener({ ev: 'gone', message: this.ended! }));
    else this.contexts.set(id, listener);
    this.updateRef();
    return id;
  }

  /**
   * Forget a context. A context with a call still running in the agent is not closed there: pcsclite's
   * reader close() would wait on the lock that call holds and freeze the agent for every other context.
   */
  closeContext(id: number, stuck: boolean): void {
    if (!this.contexts.delete(id)) return;
    if (stuck) this.retired = true;
    else if (!this.ended && this.child.connected) {
      try {
        this.child.send({ op: 'close', ctx: id });
      } catch {
        // The agent is on its way out.
      }
    }
    if (this.retired && this.contexts.size === 0) this.kill();
    this.updateRef();
  }

  /** No new contexts here; ends the process as soon as no context uses it. */
  retire(): void {
    this.retired = true;
    if (this.contexts.size === 0) this.kill();
  }

  private kill(): void {
    if (!this.ended) this.child.kill('SIGKILL');
  }

  /** Keep this process alive only while someone waits on the agent or holds a context in it. */
  private updateRef(): void {
    const busy = !this.ended && (this.pending.size > 0 || this.contexts.size > 0);
    const channel = this.child.channel as { ref?: () => void; unref?: () => void } | undefined | null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (busy) {
      this.child.ref();
      channel?.ref?.();
    } else {
      this.child.unref();
      channel?.unref?.();
      if (!this.ended) {
        this.idleTimer = setTimeout(() => this.retire(), AGENT_IDLE_MS);
        this.idleTimer.unref();
      }
    }
  }

  static {
    // An agent blocked inside a native call cannot notice its parent leaving; never leave one behind.
    process.on('exit', () => {
      for (const agent of PcscAgent.alive) agent.kill();
    });
  }
}

/** @internal Process ids of running PC/SC agents. */
export function pcscAgentPids(): number[] {
  return PcscAgent.pids();
}

interface ReaderWatch {
  /** A card to connect to: in the reader and not mute. */
  present: boolean;
  /** Any card in the reader, as pcscd last reported it (a mute card too). */
  card?: boolean;
  atr?: Uint8Array;
  /** Set once the status thread has reported at least once. */
  known: boolean;
  /** The reader left pcscd's list ('end'), or the agent serving this context is gone ('gone'): nothing more is known. */
  lost?: { why: 'end' | 'gone'; message: string };
}

/**
 * One PC/SC context in the agent, with the readers it reports. pcsclite cannot recover a handle whose card
 * was pulled, or a call that never returned, so a context is thrown away after such a fault.
 */
class PcscContext {
  readonly ready: Promise<string[]>;
  readonly readers = new Map<string, ReaderWatch>();
  private names: string[] = [];
  private closed = false;
  /** Requests this context has in the agent. */
  private inFlight = 0;
  /** A request of ours timed out: it may still hold a native lock in the agent. */
  private stuck = false;
  private readonly id: number;
  private readonly statusListeners = new Set<(name: string, watch: ReaderWatch) => void>();
  private first: ((names: string[]) => void) | undefined;
  private failFirst: ((error: Error) => void) | undefined;

  private constructor(private readonly agent: PcscAgent, listTimeoutMs: number) {
    this.id = agent.openContext((event) => this.onEvent(event));
    this.ready = withTimeout(
      new Promise<string[]>((resolve, reject) => {
        this.first = resolve;
        this.failFirst = reject;
      }),
      listTimeoutMs,
      () => {
        // SCardEstablishContext or the first list is stuck in pcscd (or the agent did not even start).
        this.abandon();
        return new TransportTimeoutError(`pcscd did not list its readers within ${listTimeoutMs} ms`);
      },
    );
    this.ready.catch(() => undefined);
    this.call(() => agent.request({ op: 'open', ctx: this.id })).catch((error: unknown) => {
      this.failFirst?.(
        error instanceof TransportError
          ? error
          : new TransportUnavailableError(`PC/SC service unavailable (${errorMessage(error)}): is pcscd running? (tools/pcscd-start.sh starts one)`, undefined, {
              cause: error,
            }),
      );
    });
  }

  static open(options: PcscAgentOptions | undefined, listTimeoutMs: number): PcscContext {
    return new PcscContext(PcscAgent.for(options), listTimeoutMs);
  }

  get readerNames(): string[] {
    return this.names.slice();
  }

  onStatus(listener: (name: string, watch: ReaderWatch) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private notify(name: string, watch: ReaderWatch): void {
    for (const listener of this.statusListeners) listener(name, watch);
  }

  private onEvent(event: ContextEvent): void {
    if (this.closed) return;
    switch (event.ev) {
      case 'list':
        if (event.names) {
          this.names = event.names;
          for (const name of event.names) if (!this.readers.has(name)) this.readers.set(name, { present: false, known: false });
          this.first?.(event.names.slice());
          this.first = undefined;
        } else if (this.first) {
          this.failFirst?.(new TransportUnavailableError(`PC/SC reader list failed: ${event.message}`));
        }
        return;
      case 'status': {
        let watch = this.readers.get(event.reader);
        if (!watch) {
          watch = { present: false, known: false };
          this.readers.set(event.reader, watch);
        }
        watch.known = true;
        // A mute card is in the reader but gave no ATR: nothing we can connect to.
        watch.card = (event.state & SCARD_STATE_PRESENT) !== 0;
        watch.present = watch.card && (event.state & SCARD_STATE_MUTE) === 0;
        watch.atr = watch.present && event.atr ? Uint8Array.from(Buffer.from(event.atr, 'hex')) : undefined;
        if (watch.atr?.length === 0) watch.atr = undefined;
        this.notify(event.reader, watch);
        return;
      }
      case 'end': {
        const watch = this.readers.get(event.reader);
        this.readers.delete(event.reader);
        this.names = this.names.filter((n) => n !== event.reader);
        if (watch) {
          watch.present = false;
          watch.lost = { why: 'end', message: `PC/SC reader "${event.reader}" is gone` };
          this.notify(event.reader, watch);
        }
        return;
      }
      case 'gone':
        this.failFirst?.(new TransportUnavailableError(event.message));
        for (const [name, watch] of this.readers) {
          watch.present = false;
          watch.lost = { why: 'gone', message: event.message };
          this.notify(name, watch);
        }
        this.readers.clear();
        this.names = [];
    }
  }

  /** Wait until every reader reported its first status (the status threads answer within milliseconds). */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.readers.values()].some((w) => !w.known) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await fn();
    } finally {
      this.inFlight--;
    }
  }

  connect(reader: string, share: number, protocol: number): Promise<number> {
    return this.call(() => this.agent.request({ op: 'connect', ctx: this.id, reader, share, protocol })) as Promise<number>;
  }

  async transmit(reader: string, command: Uint8Array, max: number, protocol: number): Promise<Uint8Array> {
    const data = Buffer.from(command.buffer, command.byteOffset, command.byteLength).toString('hex');
    const response = (await this.call(() => this.agent.request({ op: 'transmit', ctx: this.id, reader, data, max, protocol }))) as string | undefined;
    return Uint8Array.from(Buffer.from(response ?? '', 'hex'));
  }

  disconnect(reader: string, disposition: number): Promise<void> {
    return this.call(() => this.agent.request({ op: 'disconnect', ctx: this.id, reader, disposition })) as Promise<void>;
  }

  /**
   * A call of ours ran out of time: whatever it holds in the agent, this context is not to be reused, and
   * neither is the agent, at once (not when this context is closed): npm pcsclite holds a reader's mutex for
   * the whole of a native connect or transmit, and the agent's main thread takes that mutex to deliver the
   * reader's next status change, so the agent may stop answering anyone while the call is stuck. A caller
   * that never closes this context (a failed connect left as it is) must not send the next list there.
   */
  abandon(): void {
    this.stuck = true;
    this.agent.retire();
  }

  /** Never blocks: a context with a call stuck in the agent gets its agent retired and killed instead. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.statusListeners.clear();
    this.first = undefined;
    this.agent.closeContext(this.id, this.stuck || this.inFlight > 0);
  }
}

function pickReader(ctx: PcscContext, wanted: string | undefined): string {
  const names = ctx.readerNames;
  if (wanted !== undefined) return matchReader(names, wanted);
  if (names.length === 0) throw new ReaderNotFoundError('no PC/SC reader found (is a reader plugged in, or vpcd installed?)');
  return names.find((n) => ctx.readers.get(n)?.present) ?? names[0]!;
}

/** How long a reader list waits for each reader's first status (pcscd polls every 400 ms). */
const SETTLE_MS = 3000;

/** Names and card presence of every reader pcscd knows (the list bounded by `timeoutMs`, default 10 s). */
export async function listReaders(opts: { timeoutMs?: number; agent?: PcscAgentOptions } = {}): Promise<PcscReaderStatus[]> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  requireBindingInstalled();
  const ctx = PcscContext.open(opts.agent, timeoutMs);
  try {
    const names = await ctx.ready;
    // A reader whose status never comes (frozen by its card) is listed without a card after this, not waited on.
    await ctx.settle(Math.min(timeoutMs, SETTLE_MS));
    return names.map((name) => {
      const w = ctx.readers.get(name);
      return { name, cardPresent: w?.present ?? false, ...(w?.atr ? { atr: w.atr } : {}) };
    });
  } finally {
    ctx.close();
  }
}

/**
 * Wait until a card is in the reader (exact name or unique substring; any reader when omitted).
 * Rejects with TransportTimeoutError after `timeoutMs`.
 */
export async function waitForCard(
  readerName?: string,
  opts: { timeoutMs?: number; agent?: PcscAgentOptions } = {},
): Promise<{ reader: string; atr: Uint8Array }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  requireBindingInstalled();
  const ctx = PcscContext.open(opts.agent, timeoutMs);
  try {
    const names = await ctx.ready;
    const target = readerName === undefined ? undefined : matchReader(names, readerName);
    return await withTimeout(
      new Promise<{ reader: string; atr: Uint8Array }>((resolve) => {
        const check = (name: string, w: ReaderWatch): void => {
          if ((target === undefined || name === target) && w.present && w.atr) resolve({ reader: name, atr: w.atr });
        };
        ctx.onStatus(check);
        for (const [name, w] of ctx.readers) check(name, w);
      }),
      timeoutMs,
      () => new TransportTimeoutError(`no card in ${target ? `"${target}"` : 'any PC/SC reader'} within ${timeoutMs} ms`, target),
    );
  } finally {
    ctx.close();
  }
}

/**
 * Wait until pcscd reports no card in the reader (exact name or unique substring). Resolves at once when the reader
 * is already empty; rejects with TransportTimeoutError after `timeoutMs` (default 10 s). Use it before putting the
 * next card in after taking one out: a card that arrives before pcscd has seen the previous one leave can be taken
 * for the same card (same handle, same ATR), and the first exchange fails (vpcd: SCardTransmit 0x80100016).
 */
export async function waitForRemoval(readerName: string, opts: { timeoutMs?: number; agent?: PcscAgentOptions } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  requireBindingInstalled();
  const ctx = PcscContext.open(opts.agent, timeoutMs);
  try {
    const names = await ctx.ready;
    const target = matchReader(names, readerName);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        // Empty only on pcscd's word: a status without a card (a mute card is a card). The reader leaving the list or
        // the PC/SC agent dying says nothing about the card, and is an error, never "removed".
        const check = (name: string, w: ReaderWatch): void => {
          if (name !== target) return;
          if (w.lost) reject(w.lost.why === 'gone' ? new TransportUnavailableError(`PC/SC agent gone while waiting for "${target}" to empty: ${w.lost.message}`, target) : new ReaderNotFoundError(`${w.lost.message} while waiting for it to empty`, target));
          else if (w.known && !w.card) resolve();
        };
        ctx.onStatus(check);
        const w = ctx.readers.get(target);
        if (w) check(target, w);
      }),
      Math.max(0, deadline - Date.now()),
      () => new TransportTimeoutError(`a card still in "${target}" after ${timeoutMs} ms`, target),
    );
  } finally {
    ctx.close();
  }
}

/** A card in a PC/SC reader. Resources (a context in the PC/SC agent) are held from connect() to disconnect(). */
export class PcscTransport implements Transport {
  private readonly opts: Required<Omit<PcscTransportOptions, 'reader' | 'agent' | 'maxResponse'>> & {
    maxResponse: number;
  };
  private readonly wanted: string | undefined;
  private readonly agent: PcscAgentOptions | undefined;
  private ctx: PcscContext | undefined;
  private readerName: string | undefined;
  private protocolBits: number | undefined;
  private atr: Uint8Array | undefined;
  /** Why the handle we hold is unusable (card left, a call timed out, pcscd gone): connect() starts afresh. */
  private stale: 'removed' | 'timeout' | 'fault' | undefined;
  private lastPresent: boolean | undefined;
  private readonly listeners = new Set<(event: CardEvent) => void>();
  private unwatch: (() => void) | undefined;
  private readonly removalWaiters = new Set<() => void>();
  /** Serialises operations: pcsclite has one handle per reader and PC/SC one exchange at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: PcscTransportOptions = {}) {
    // Checked here, not at import, so the rest of the SDK works without the binding; in the constructor
    // (not at connect), so a missing binding is reported as early as possible.
    requireBindingInstalled();
    this.agent = options.agent;
    this.wanted = options.reader;
    const extendedLength = options.extendedLength ?? true;
    this.opts = {
      protocol: options.protocol ?? 'any',
      shareMode: options.shareMode ?? 'shared',
      disposition: options.disposition ?? 'leave',
      extendedLength,
      maxResponse: options.maxResponse ?? (extendedLength ? 65538 : 258),
      timeoutMs: options.timeoutMs ?? 10_000,
      removalTimeoutMs: options.removalTimeoutMs ?? 1500,
      readerListTimeoutMs: options.readerListTimeoutMs ?? 10_000,
    };
  }

  /** The reader (once chosen), extended length and the largest response. */
  get info(): TransportInfo {
    return {
      reader: this.readerName ?? this.wanted ?? 'pcsc',
      extendedLength: this.opts.extendedLength,
      maxResponse: this.opts.maxResponse,
    };
  }

  /** Negotiated protocol while connected. */
  get protocol(): 'T=0' | 'T=1' | undefined {
    if (this.protocolBits === undefined) return undefined;
    return this.protocolBits & SCARD_PROTOCOL_T1 ? 'T=1' : 'T=0';
  }

  /** Whether a card handle is open. */
  get connected(): boolean {
    return this.protocolBits !== undefined;
  }

  /** Reader status without connecting (opens the context if needed). */
  async status(): Promise<PcscReaderStatus> {
    const { ctx, name } = await this.context();
    await ctx.settle(Math.min(this.opts.readerListTimeoutMs, SETTLE_MS));
    const w = ctx.readers.get(name);
    return { name, cardPresent: w?.present ?? false, ...(w?.atr ? { atr: w.atr } : {}) };
  }

  /** Wait until a card is in this transport's reader; TransportTimeoutError after timeoutMs. */
  async waitForCard(timeoutMs = 10_000): Promise<Uint8Array> {
    const { ctx, name } = await this.context();
    try {
      return await withTimeout(
        new Promise<Uint8Array>((resolve) => {
          const check = (n: string, w: ReaderWatch): void => {
            if (n === name && w.present && w.atr) {
              off();
              resolve(w.atr);
            }
          };
          const off = ctx.onStatus(check);
          const w = ctx.readers.get(name);
          if (w) check(name, w);
        }),
        timeoutMs,
        () => new TransportTimeoutError(`no card in "${name}" within ${timeoutMs} ms`, name),
      );
    } finally {
      this.releaseIfIdle();
    }
  }

  onCardEvent(listener: (event: CardEvent) => void): () => void {
    this.listeners.add(listener);
    // Events need the status thread running even while not connected.
    void this.context().catch(() => undefined);
    return () => {
      this.listeners.delete(listener);
      this.releaseIfIdle();
    };
  }

  connect(): Promise<Uint8Array> {
    return this.serial(async () => {
      if (this.connected && !this.stale && this.atr) return this.atr;
      return this.doConnect();
    });
  }

  transmit(command: Uint8Array): Promise<Uint8Array> {
    return this.serial(async () => {
      // vpcd's driver sends nothing for an empty APDU and then waits for an answer: the bridge has to pull
      // the card to recover (docs/pcsc.md "Short frames"). Not ours to send.
      if (command.length === 0) throw new InvalidInputError('an empty command is not an APDU');
      const { ctx, name, protocol } = this.requireConnected();
      let response: Uint8Array;
      try {
        response = await this.bounded(ctx, ctx.transmit(name, command, this.opts.maxResponse, protocol), 'transmit', name);
      } catch (error) {
        throw await this.classify(error, 'transmit', name);
      }
      if (response.length >= 2) return response;
      // vpcd reports a card that vanished mid-exchange as success with no bytes; no card answers without a SW.
      if (await this.confirmRemoval(name)) {
        this.stale = 'removed';
        throw new CardRemovedError(`card removed from "${name}" during transmit`, name);
      }
      throw new TransportError(`"${name}" returned ${response.length} byte(s), not a response APDU`, name);
    });
  }

  reset(): Promise<Uint8Array> {
    return this.serial(async () => {
      if (!this.connected || this.stale) return this.doConnect();
      const { ctx, name } = this.requireConnected();
      try {
        // pcsclite has no SCardReconnect: releasing the handle with RESET resets the card (vpcd gets its
        // reset frame), then we take a new handle.
        await this.bounded(ctx, ctx.disconnect(name, SCARD_RESET_CARD), 'reset', name);
      } catch (error) {
        throw await this.classify(error, 'reset', name);
      }
      this.protocolBits = undefined;
      return this.doConnect();
    });
  }

  disconnect(): Promise<void> {
    return this.serial(async () => {
      const ctx = this.ctx;
      const name = this.readerName;
      if (ctx && name && ctx.readers.has(name) && this.connected && !this.stale) {
        try {
          await this.bounded(ctx, ctx.disconnect(name, DISPOSITION[this.opts.disposition]), 'disconnect', name);
        } catch {
          // The card may have gone meanwhile; the context is dropped below either way.
        }
      }
      this.protocolBits = undefined;
      this.atr = undefined;
      // Drop the context: a pcsclite reader whose disconnect failed keeps a dead handle forever.
      this.dropContext();
      if (this.listeners.size > 0) void this.context().catch(() => undefined);
    });
  }

  // --- internals ---

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async context(): Promise<{ ctx: PcscContext; name: string }> {
    if (!this.ctx) {
      const ctx = PcscContext.open(this.agent, this.opts.readerListTimeoutMs);
      this.ctx = ctx;
      this.unwatch = ctx.onStatus((name, w) => this.onStatus(name, w));
    }
    const ctx = this.ctx;
    try {
      await ctx.ready;
      if (!this.readerName) {
        // Without a name, the reader that has a card wins: give the status threads a moment to report.
        if (this.wanted === undefined) await ctx.settle(500);
        this.readerName = pickReader(ctx, this.wanted);
      } else if (!ctx.readerNames.includes(this.readerName)) {
        throw new ReaderNotFoundError(`PC/SC reader "${this.readerName}" is gone`, this.readerName);
      }
    } catch (error) {
      if (this.ctx === ctx) this.dropContext();
      throw error;
    }
    return { ctx, name: this.readerName };
  }

  private onStatus(name: string, w: ReaderWatch): void {
    if (name !== this.readerName) return;
    // Present without an ATR yet: the next status report brings it.
    if (w.present && !w.atr) return;
    if (w.present === this.lastPresent) return;
    this.lastPresent = w.present;
    if (!w.present) {
      if (this.connected) this.stale = 'removed';
      for (const wake of this.removalWaiters) wake();
    }
    const event: CardEvent = w.present && w.atr ? { type: 'inserted', atr: w.atr } : { type: 'removed' };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's fault is not the reader's.
      }
    }
  }

  private async doConnect(): Promise<Uint8Array> {
    if (this.stale) {
      this.dropContext();
      this.stale = undefined;
    }
    this.protocolBits = undefined;
    const { ctx, name } = await this.context();
    const w = ctx.readers.get(name);
    if (!w) throw new ReaderNotFoundError(`PC/SC reader "${name}" is gone`, name);
    const share = this.opts.shareMode === 'exclusive' ? SCARD_SHARE_EXCLUSIVE : SCARD_SHARE_SHARED;
    let protocol: number;
    try {
      protocol = await this.bounded(ctx, ctx.connect(name, share, PROTOCOL_BITS[this.opts.protocol]), 'connect', name);
    } catch (error) {
      throw await this.classify(error, 'connect', name, true);
    }
    this.protocolBits = protocol;
    // pcsclite does not return the ATR from connect; the reader's status thread reports it.
    const deadline = Date.now() + this.opts.removalTimeoutMs;
    while (!(w.present && w.atr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (!w.atr) throw new TransportError(`connected to "${name}" but the reader reported no ATR`, name);
    this.atr = w.atr;
    return w.atr;
  }

  private requireConnected(): { ctx: PcscContext; name: string; protocol: number } {
    const name = this.readerName ?? this.wanted ?? 'pcsc';
    if (this.stale === 'removed') throw new CardRemovedError(`card removed from "${name}"`, name);
    if (this.stale) throw new TransportError(`connection to "${name}" unusable after a ${this.stale}: call connect() again`, name);
    if (!this.ctx || !this.readerName || !this.ctx.readers.has(this.readerName) || this.protocolBits === undefined) {
      throw new TransportError(`not connected to a card in "${name}": call connect() first`, name);
    }
    return { ctx: this.ctx, name: this.readerName, protocol: this.protocolBits };
  }

  /** Race a call to the agent against the timeout and against the reader reporting the card gone. */
  private bounded<T>(ctx: PcscContext, call: Promise<T>, op: string, name: string): Promise<T> {
    let wake: (() => void) | undefined;
    const removed = new Promise<never>((_, reject) => {
      // No card to connect to is an empty reader, not a removal (nothing was there to remove).
      wake = () => reject(new CardRemovedError(op === 'connect' ? `no card in "${name}"` : `card removed from "${name}" during ${op}`, name));
      this.removalWaiters.add(wake);
    });
    const ms = this.opts.timeoutMs;
    return withTimeout(Promise.race([call, removed]), ms, () => {
      // The native call may still hold the reader: neither this handle nor its context is used again, and
      // the agent running it is retired (killed once its contexts are closed).
      this.stale ??= 'timeout';
      ctx.abandon();
      return new TransportTimeoutError(`${op} on "${name}" got no answer within ${ms} ms`, name);
    }).finally(() => {
      if (wake) this.removalWaiters.delete(wake);
    });
  }

  /** Turn a pcsclite failure into our typed errors, waiting briefly for pcscd to confirm a removal. */
  private async classify(error: unknown, op: string, name: string, connecting = false): Promise<TransportError> {
    if (error instanceof TransportError) {
      if (error instanceof TransportUnavailableError) this.stale = 'fault';
      return error;
    }
    const code = pcscErrorCode(error);
    const text = errorMessage(error);
    const cause = { cause: error };
    if (code !== undefined && SERVICE_CODES.has(code)) {
      this.stale = 'fault';
      return new TransportUnavailableError(`PC/SC service gone during ${op} on "${name}": ${text}`, name, cause);
    }
    if (code !== undefined && READER_CODES.has(code)) {
      this.stale = 'fault';
      return new ReaderNotFoundError(`PC/SC reader "${name}" gone during ${op}: ${text}`, name, cause);
    }
    if (code !== undefined && REMOVED_CODES.has(code)) {
      if (!connecting) this.stale = 'removed';
      return new CardRemovedError(connecting ? `no card in "${name}"` : `card removed from "${name}" during ${op}`, name, cause);
    }
    if (code !== undefined && MAYBE_REMOVED_CODES.has(code) && (await this.confirmRemoval(name))) {
      this.stale = 'removed';
      return new CardRemovedError(connecting ? `no card in "${name}"` : `card removed from "${name}" during ${op}`, name, cause);
    }
    return new TransportError(`${op} on "${name}" failed: ${text}`, name, cause);
  }

  private async confirmRemoval(name: string): Promise<boolean> {
    const deadline = Date.now() + this.opts.removalTimeoutMs;
    for (;;) {
      const w = this.ctx?.readers.get(name);
      if (!w || !w.present) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private releaseIfIdle(): void {
    if (!this.connected && this.listeners.size === 0) this.dropContext();
  }

  private dropContext(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    this.ctx?.close();
    this.ctx = undefined;
    // Kept while someone listens, so re-opening the context does not repeat an 'inserted' they already saw.
    if (this.listeners.size === 0) this.lastPresent = undefined;
  }
}
