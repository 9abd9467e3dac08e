// A card image run as the emulated card on its own worker thread: the card's work (decrypting a LOAD, its durable
// commit) runs beside the host's and the back office's, as a real card's chip does, instead of in turn with them.

import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { CardRemovedError, TransportError } from '../../sdk/errors.js';
import { LockHeldError, type LockOwner } from '../../sdk/file-lock.js';
import type { CardEvent, Transport, TransportInfo } from '../transport/transport.js';

export type CardThreadRequest = { id: number } & (
  | { op: 'open'; path: string }
  | { op: 'powerOn' }
  | { op: 'powerOff' }
  | { op: 'reset' }
  | { op: 'transmit'; apdu: Uint8Array }
  | { op: 'close' }
);

export type CardThreadFailure =
  | { kind: 'lock'; message: string; resource: string; holder: LockOwner }
  | { kind: 'corrupt'; message: string }
  | { kind: 'other'; message: string; name?: string; stack?: string };

export type CardThreadReply = { id: number; ok: true; value: Uint8Array | null } | { id: number; ok: false; error: CardThreadFailure };

/** The image could not be opened as a card (its NVM does not check): the caller names the image and what to do. */
export class CardThreadCorruptError extends TransportError {}

/**
 * Where the worker's compiled module is: beside this one in dist/. Run from TypeScript source (no compiled worker
 * next to it) there is none, and callers use the in-process emulator instead (cardThreadAvailable).
 */
const WORKER = fileURLToPath(new URL('./card-thread-worker.js', import.meta.url));

export function cardThreadAvailable(): boolean {
  return import.meta.url.endsWith('.js');
}

/** How long a process that exits without closing the card waits for the thread to empty the image's journal. */
const EXIT_CHECKPOINT_MS = 5_000;

/**
 * The Transport to a card image on its own thread. One request at a time is what APDUs are (the session sends the
 * next command after the answer); requests are still numbered, so a late answer can never be taken for another's.
 * The image is locked by this process (a second process gets LockHeldError) until close(), which empties its
 * journal first, as the in-process emulator does at exit; so does an exit without close() (process 'exit').
 */
export class CardThreadTransport implements Transport {
  readonly info: TransportInfo;
  private readonly worker: Worker;
  private readonly closed = new SharedArrayBuffer(4);
  private readonly waiting = new Map<number, { resolve: (v: Uint8Array | null) => void; reject: (e: Error) => void; op: string }>();
  private nextId = 1;
  private connected = false;
  /** Set once the thread is gone (closed, crashed or terminated): every later request fails with it. */
  private gone?: Error;
  private readonly onExit = () => this.closeAtExit();

  private constructor(private readonly path: string, name: string) {
    this.info = { reader: name, extendedLength: true, maxResponse: 65538 };
    // The process's own arguments: the image's lock file names the command holding it (sdk/file-lock.ts). Node's
    // options too, except those that only fit a main script (--input-type: the worker is a file).
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
    this.worker = new Worker(WORKER, { workerData: { closed: this.closed }, argv: process.argv.slice(2), execArgv });
    this.worker.on('message', (r: CardThreadReply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (r.ok) w.resolve(r.value);
      else w.reject(this.error(r.error, w.op));
    });
    this.worker.on('error', (e) => this.stop(new TransportError(`the emulated card's thread failed: ${e.message}`, this.info.reader, { cause: e })));
    this.worker.on('exit', (code) => this.stop(new CardRemovedError(`the emulated card's thread stopped (exit ${code})`, this.info.reader)));
    // The thread does not keep the process alive by itself; requests in flight do (see request()).
    this.worker.unref();
    process.once('exit', this.onExit);
  }

  /** Open `path` (an existing image) on a new thread; LockHeldError when another process holds it. */
  static async open(path: string, name = `emulator:${path}`): Promise<CardThreadTransport> {
    const t = new CardThreadTransport(path, name);
    try {
      await t.request({ op: 'open', path });
    } catch (e) {
      await t.terminate();
      throw e;
    }
    return t;
  }

  private error(f: CardThreadFailure, op: string): Error {
    if (f.kind === 'lock') return new LockHeldError(f.resource, f.holder);
    if (f.kind === 'corrupt') return new CardThreadCorruptError(f.message, this.info.reader);
    // The card answers every APDU with a status word; an exception here is a fault of the emulator or its file.
    const e = new TransportError(`the emulated card failed on ${op}: ${f.message}`, this.info.reader);
    if (f.stack) e.stack = `${e.name}: ${e.message}\n(card thread) ${f.stack}`;
    return e;
  }

  private stop(e: Error): void {
    this.gone ??= e;
    for (const w of this.waiting.values()) w.reject(this.gone);
    this.waiting.clear();
    this.worker.unref();
  }

  private request(r: { op: 'open'; path: string } | { op: 'powerOn' | 'powerOff' | 'reset' | 'close' } | { op: 'transmit'; apdu: Uint8Array }): Promise<Uint8Array | null> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    return new Promise<Uint8Array | null>((resolve, reject) => {
      // While an answer is awaited the thread keeps the process alive; idle, it does not.
      if (this.waiting.size === 0) this.worker.ref();
      const done = () => {
        if (this.waiting.size === 0 && !this.gone) this.worker.unref();
      };
      this.waiting.set(id, {
        op: r.op === 'transmit' ? 'an APDU' : r.op,
        resolve: (v) => {
          resolve(v);
          done();
        },
        reject: (e) => {
          reject(e);
          done();
        },
      });
      this.worker.postMessage({ id, ...r } as CardThreadRequest);
    });
  }

  async connect(): Promise<Uint8Array> {
    const atr = (await this.request({ op: 'powerOn' }))!;
    this.connected = true;
    return atr;
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    if (!this.connected) await this.connect();
    return (await this.request({ op: 'transmit', apdu: command }))!;
  }

  async reset(): Promise<Uint8Array> {
    const atr = (await this.request({ op: 'reset' }))!;
    this.connected = true;
    return atr;
  }

  /** Power off and let go of the image: its journal emptied, the lock released, the thread ended. */
  async disconnect(): Promise<void> {
    if (this.gone) return;
    if (this.connected) await this.request({ op: 'powerOff' });
    this.connected = false;
    await this.request({ op: 'close' });
    process.removeListener('exit', this.onExit);
    await this.terminate();
  }

  onCardEvent(_listener: (e: CardEvent) => void): () => void {
    // An image does not leave its reader: no events.
    return () => undefined;
  }

  private async terminate(): Promise<void> {
    process.removeListener('exit', this.onExit);
    this.stop(new CardRemovedError('the emulated card is closed', this.info.reader));
    await this.worker.terminate();
  }

  /**
   * The process is exiting with the image still open (an error path that skipped disconnect): ask the thread to
   * empty the journal, and wait for it, bounded. If it cannot, the journal stays beside the image and the next
   * open replays it, as after a kill.
   */
  private closeAtExit(): void {
    if (this.gone) return;
    const flag = new Int32Array(this.closed);
    this.worker.postMessage({ id: this.nextId++, op: 'close' } as CardThreadRequest);
    Atomics.wait(flag, 0, 0, EXIT_CHECKPOINT_MS);
  }
}
