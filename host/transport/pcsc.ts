// The PC/SC transport: drives a card in any reader pcscd knows (real readers, or vpcd's virtual ones) via
// npm `pcsclite`, loaded lazily so the SDK works without it. Every native call is bounded by a timeout.

import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import {
  CardRemovedError,
  ReaderNotFoundError,
  TransportError,
  TransportTimeoutError,
  TransportUnavailableError,
} from '../../sdk/errors.js';
import type { CardEvent, Transport, TransportInfo } from './transport.js';

// The slice of pcsclite's API we use, declared here so type-checking never needs the optional package.
interface NativeReader extends EventEmitter {
  readonly name: string;
  readonly connected: boolean;
  connect(options: { share_mode: number; protocol: number }, cb: (err: unknown, protocol: number) => void): void;
  disconnect(disposition: number, cb: (err: unknown) => void): void;
  transmit(data: Buffer, resLen: number, protocol: number, cb: (err: unknown, response: Buffer) => void): void;
  close(): void;
}
interface NativeContext extends EventEmitter {
  readers: Record<string, NativeReader>;
  start(cb: (err: unknown, data: Buffer) => void): void;
  close(): void;
}
/** pcsclite's default export: creates a context that reports readers. */
export type PcscliteFactory = () => NativeContext;

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

let cachedFactory: PcscliteFactory | undefined;

/** Load npm `pcsclite` on first use; its absence or a failed native build becomes a TransportUnavailableError. */
export function loadPcsclite(): PcscliteFactory {
  if (cachedFactory) return cachedFactory;
  try {
    const require = createRequire(import.meta.url);
    cachedFactory = require('pcsclite') as PcscliteFactory;
    return cachedFactory;
  } catch (cause) {
    const why = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    throw new TransportUnavailableError(`PC/SC binding (npm pcsclite) unavailable (${why}): ${HOW_TO_INSTALL}`, undefined, {
      cause,
    });
  }
}

/** Transmission protocol to negotiate with the card. */
export type PcscProtocol = 'T=0' | 'T=1' | 'any';
/** Whether other PC/SC programs may use the card while this transport is connected. */
export type PcscShareMode = 'shared' | 'exclusive';
/** What happens to the card at disconnect. */
export type PcscDisposition = 'leave' | 'reset' | 'unpower';

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
  /** Upper bound on any one native call (connect, transmit, reset, disconnect). Default 10 000 ms. */
  timeoutMs?: number;
  /**
   * After a failed exchange that may be a pulled card, how long to wait for the reader to report it gone
   * (pcscd polls about every 400 ms) before calling it a plain transport fault. Default 1500 ms.
   */
  removalTimeoutMs?: number;
  /** How long to wait for pcscd's first reader list. Default 3000 ms. */
  readerListTimeoutMs?: number;
  /** Inject the binding (tests); default loads npm pcsclite. */
  binding?: PcscliteFactory;
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

interface ReaderWatch {
  reader: NativeReader;
  present: boolean;
  atr?: Uint8Array;
  /** Set once the status thread has reported at least once. */
  known: boolean;
}

/**
 * One pcsclite context plus the reader objects it created. A reader object carries one card handle, and
 * pcsclite cannot recover a handle whose card was pulled, so a context is thrown away after such a fault.
 */
class PcscContext {
  readonly ready: Promise<string[]>;
  readonly readers = new Map<string, ReaderWatch>();
  private names: string[] = [];
  private closed = false;
  /** Native calls in flight: closing a reader takes the lock they hold, so it waits for them. */
  inFlight = 0;
  private closeWhenIdle = false;
  private readonly statusListeners = new Set<(name: string, watch: ReaderWatch) => void>();

  private constructor(private readonly native: NativeContext, listTimeoutMs: number) {
    // close() makes pcsclite emit 'error' ("Command cancelled"), and a lost pcscd does too: an unheard
    // 'error' event would kill the process.
    native.on('error', () => undefined);
    let first: ((names: string[]) => void) | undefined;
    let failFirst: ((error: Error) => void) | undefined;
    this.ready = withTimeout(
      new Promise<string[]>((resolve, reject) => {
        first = resolve;
        failFirst = reject;
      }),
      listTimeoutMs,
      () => new TransportTimeoutError(`pcscd did not list its readers within ${listTimeoutMs} ms`),
    );
    this.ready.catch(() => undefined);
    native.on('reader', (reader: NativeReader) => this.adopt(reader));
    // pcsclite emits one 'reader' per new name but says nothing when the list is complete or empty; its
    // start callback (called on every change, before the 'reader' events) is the only place that knows.
    const start = native.start.bind(native);
    native.start = (cb) =>
      start((err, data) => {
        cb(err, data);
        if (err) {
          failFirst?.(new TransportUnavailableError(`PC/SC reader list failed: ${errorMessage(err)}`, undefined, { cause: err }));
          return;
        }
        this.names = Object.keys(native.readers ?? {});
        first?.(this.names.slice());
        first = undefined;
      });
  }

  static open(factory: PcscliteFactory, listTimeoutMs: number): PcscContext {
    let native: NativeContext;
    try {
      native = factory();
    } catch (cause) {
      // SCardEstablishContext fails synchronously when no pcscd answers on its socket.
      throw new TransportUnavailableError(
        `PC/SC service unavailable (${errorMessage(cause)}): is pcscd running? (tools/pcscd-start.sh starts one)`,
        undefined,
        { cause },
      );
    }
    return new PcscContext(native, listTimeoutMs);
  }

  get readerNames(): string[] {
    return this.names.slice();
  }

  onStatus(listener: (name: string, watch: ReaderWatch) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private adopt(reader: NativeReader): void {
    const watch: ReaderWatch = { reader, present: false, known: false };
    this.readers.set(reader.name, watch);
    reader.on('error', () => undefined);
    reader.on('status', (status: { state: number; atr?: Buffer }) => {
      watch.known = true;
      // A mute card is in the reader but gave no ATR: nothing we can connect to.
      watch.present = (status.state & SCARD_STATE_PRESENT) !== 0 && (status.state & SCARD_STATE_MUTE) === 0;
      watch.atr = watch.present && status.atr?.length ? Uint8Array.from(status.atr) : undefined;
      for (const listener of this.statusListeners) listener(reader.name, watch);
    });
    reader.on('end', () => {
      this.readers.delete(reader.name);
      watch.present = false;
      for (const listener of this.statusListeners) listener(reader.name, watch);
    });
  }

  /** Wait until every reader reported its first status (the status threads answer within milliseconds). */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.readers.values()].some((w) => !w.known) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Run a native call, counted so close() never blocks the event loop on a lock a stuck call holds. */
  async call<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await fn();
    } finally {
      this.inFlight--;
      if (this.inFlight === 0 && this.closeWhenIdle) this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    if (this.inFlight > 0) {
      // A call stuck in pcscd holds the reader's lock; closing now would freeze the event loop with it.
      this.closeWhenIdle = true;
      return;
    }
    this.closed = true;
    this.statusListeners.clear();
    for (const { reader } of this.readers.values()) {
      try {
        reader.close();
      } catch {
        // Already gone with its reader.
      }
    }
    this.readers.clear();
    try {
      this.native.close();
    } catch {
      // pcscd may have vanished first.
    }
  }
}

function pickReader(ctx: PcscContext, wanted: string | undefined): string {
  const names = ctx.readerNames;
  if (wanted !== undefined) return matchReader(names, wanted);
  if (names.length === 0) throw new ReaderNotFoundError('no PC/SC reader found (is a reader plugged in, or vpcd installed?)');
  return names.find((n) => ctx.readers.get(n)?.present) ?? names[0]!;
}

/** Names and card presence of every reader pcscd knows. */
export async function listReaders(opts: { timeoutMs?: number; binding?: PcscliteFactory } = {}): Promise<PcscReaderStatus[]> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const ctx = PcscContext.open(opts.binding ?? loadPcsclite(), timeoutMs);
  try {
    const names = await ctx.ready;
    await ctx.settle(timeoutMs);
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
  opts: { timeoutMs?: number; binding?: PcscliteFactory } = {},
): Promise<{ reader: string; atr: Uint8Array }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const ctx = PcscContext.open(opts.binding ?? loadPcsclite(), Math.min(timeoutMs, 3000));
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

/** A card in a PC/SC reader. Resources (pcscd context, status thread) are held from connect() to disconnect(). */
export class PcscTransport implements Transport {
  private readonly opts: Required<Omit<PcscTransportOptions, 'reader' | 'binding' | 'maxResponse'>> & {
    maxResponse: number;
  };
  private readonly wanted: string | undefined;
  private readonly factory: PcscliteFactory;
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
    // Loading here, not at import, keeps the rest of the SDK usable without the binding; loading in the
    // constructor (not at connect) reports a missing binding as early as possible.
    this.factory = options.binding ?? loadPcsclite();
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
      readerListTimeoutMs: options.readerListTimeoutMs ?? 3000,
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
    await ctx.settle(this.opts.readerListTimeoutMs);
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
      const { ctx, reader, protocol } = this.requireConnected();
      const name = reader.name;
      const exchange = ctx.call(
        () =>
          new Promise<Uint8Array>((resolve, reject) => {
            reader.transmit(Buffer.from(command), this.opts.maxResponse, protocol, (err, response) => {
              if (err) reject(err);
              else resolve(Uint8Array.from(response));
            });
          }),
      );
      let response: Uint8Array;
      try {
        response = await this.bounded(exchange, 'transmit', name);
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
      const { ctx, reader } = this.requireConnected();
      try {
        // pcsclite has no SCardReconnect: releasing the handle with RESET resets the card (vpcd gets its
        // reset frame), then we take a new handle.
        await this.bounded(
          ctx.call(() => new Promise<void>((res, rej) => reader.disconnect(SCARD_RESET_CARD, (e) => (e ? rej(e) : res())))),
          'reset',
          reader.name,
        );
      } catch (error) {
        throw await this.classify(error, 'reset', reader.name);
      }
      this.protocolBits = undefined;
      return this.doConnect();
    });
  }

  disconnect(): Promise<void> {
    return this.serial(async () => {
      const ctx = this.ctx;
      const w = this.readerName ? ctx?.readers.get(this.readerName) : undefined;
      if (ctx && w && this.connected && !this.stale) {
        try {
          await this.bounded(
            ctx.call(
              () =>
                new Promise<void>((res, rej) =>
                  w.reader.disconnect(DISPOSITION[this.opts.disposition], (e) => (e ? rej(e) : res())),
                ),
            ),
            'disconnect',
            w.reader.name,
          );
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
      const ctx = PcscContext.open(this.factory, this.opts.readerListTimeoutMs);
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
      protocol = await this.bounded(
        ctx.call(
          () =>
            new Promise<number>((resolve, reject) =>
              w.reader.connect({ share_mode: share, protocol: PROTOCOL_BITS[this.opts.protocol] }, (err, p) =>
                err ? reject(err) : resolve(p),
              ),
            ),
        ),
        'connect',
        name,
      );
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

  private requireConnected(): { ctx: PcscContext; reader: NativeReader; protocol: number } {
    const name = this.readerName ?? this.wanted ?? 'pcsc';
    if (this.stale === 'removed') throw new CardRemovedError(`card removed from "${name}"`, name);
    if (this.stale) throw new TransportError(`connection to "${name}" unusable after a ${this.stale}: call connect() again`, name);
    const w = this.readerName ? this.ctx?.readers.get(this.readerName) : undefined;
    if (!this.ctx || !w || this.protocolBits === undefined) {
      throw new TransportError(`not connected to a card in "${name}": call connect() first`, name);
    }
    return { ctx: this.ctx, reader: w.reader, protocol: this.protocolBits };
  }

  /** Race a native call against the timeout and against the reader reporting the card gone. */
  private bounded<T>(call: Promise<T>, op: string, name: string): Promise<T> {
    let wake: (() => void) | undefined;
    const removed = new Promise<never>((_, reject) => {
      // No card to connect to is an empty reader, not a removal (nothing was there to remove).
      wake = () => reject(new CardRemovedError(op === 'connect' ? `no card in "${name}"` : `card removed from "${name}" during ${op}`, name));
      this.removalWaiters.add(wake);
    });
    const ms = this.opts.timeoutMs;
    return withTimeout(Promise.race([call, removed]), ms, () => {
      // The native call may still hold the reader; don't reuse this handle.
      this.stale ??= 'timeout';
      return new TransportTimeoutError(`${op} on "${name}" got no answer within ${ms} ms`, name);
    }).finally(() => {
      if (wake) this.removalWaiters.delete(wake);
    });
  }

  /** Turn a pcsclite failure into our typed errors, waiting briefly for pcscd to confirm a removal. */
  private async classify(error: unknown, op: string, name: string, connecting = false): Promise<TransportError> {
    if (error instanceof TransportError) return error;
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
