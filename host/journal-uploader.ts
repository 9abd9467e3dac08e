// Uploads gate journals to the back office in the background, in batches that resume where the last
// acknowledged one ended, and fetches the denylist; a tap never waits for it (docs/gates.md "Upload").
// A back office that is down, slow or stalled costs the gates nothing but a growing journal.

import { hex } from '../sdk/bytes.js';
import type { Signer } from '../sdk/crypto/suite.js';
import { EticketError } from '../sdk/errors.js';
import { checkpointJson } from '../sdk/gate-journal.js';
import { BackofficeHttpError, type BackofficeClient } from './backoffice-client.js';
import type { DenylistCache } from './denylist.js';
import type { GateJournal } from './journal.js';

export interface UploaderGate {
  gateId: string;
  /** Signs the requests as this gate (its registered client key). */
  client: BackofficeClient;
  /** The same key signs the journal checkpoints. */
  signer: Signer;
}

export interface UploaderOptions {
  /** Records per request (default 200: about 200 KB of JSON). */
  batchSize?: number;
  /** Pause between rounds when there is nothing to send (ms, default 500). */
  intervalMs?: number;
  /** How often the denylist is fetched (ms, default 5000). */
  denylistIntervalMs?: number;
  /** Longest pause after failures (ms, default 30 s). */
  maxBackoffMs?: number;
  /** A gate with less than a batch uploads once its oldest record waited this long (ms, default 1000). */
  maxDelayMs?: number;
  /** Gates uploading at the same time (default 4). */
  concurrency?: number;
  log?: (event: Record<string, unknown>) => void;
}

export interface UploaderStats {
  requests: number;
  inFlight: number;
  batches: number;
  records: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  errors: number;
  lastError?: string;
  denylistVersion: number;
  denylistFetches: number;
}

export class JournalUploader {
  readonly stats: UploaderStats;
  private running = false;
  private loop?: Promise<void>;
  private wakers?: Set<() => void>;
  /** Per gate: since when records have been waiting (for maxDelayMs). */
  private readonly since = new Map<string, number>();

  constructor(
    readonly journal: GateJournal,
    readonly gates: UploaderGate[],
    readonly denylist?: DenylistCache,
    private readonly options: UploaderOptions = {},
  ) {
    this.stats = { requests: 0, inFlight: 0, batches: 0, records: 0, stored: 0, duplicates: 0, quarantined: 0, errors: 0, denylistVersion: denylist?.version ?? 0, denylistFetches: 0 };
  }

  /**
   * Upload one batch of `gate` (the oldest unacknowledged records); returns the records acknowledged (0: nothing
   * sent). With `force` false, a gate with fewer than a batch waits until its oldest record is `maxDelayMs` old:
   * each batch costs the gate two signatures (request and checkpoint), so many taps share one.
   */
  async uploadBatch(gate: UploaderGate, force = true): Promise<number> {
    const head = this.journal.head(gate.gateId);
    if (head.seq <= head.confirmed) return 0;
    const batchSize = this.options.batchSize ?? 200;
    const waiting = head.seq - head.confirmed;
    const now = Date.now();
    if (!this.since.has(gate.gateId)) this.since.set(gate.gateId, now);
    if (!force && waiting < batchSize && now - this.since.get(gate.gateId)! < (this.options.maxDelayMs ?? 1000)) return 0;
    const from = head.confirmed + 1;
    const batch = this.journal.readEncoded(gate.gateId, from, batchSize);
    if (!batch) return 0;
    const checkpoint = await this.journal.checkpointAt(gate.gateId, batch.lastSeq, gate.signer);
    this.stats.requests++;
    this.stats.inFlight++;
    try {
      const r = await gate.client.uploadJournal({ gate: gate.gateId, records: batch.records.map((x) => hex(x)), checkpoint: checkpointJson(checkpoint) });
      this.stats.batches++;
      this.stats.records += batch.records.length;
      this.stats.stored += r.stored;
      this.stats.duplicates += r.duplicates;
      this.stats.quarantined += r.quarantined;
      const through = Math.min(r.through, batch.lastSeq);
      if (through >= from) {
        // Confirmed at once; with a journal that delays its state writes (ackDelayMs) the next batch need not wait
        // for the disk: a failed write fails the journal (the gates then refuse taps), and uploadAll waits for it.
        const durable = this.journal.ack(gate.gateId, through);
        if (this.journal.ackDelayMs > 0) durable.catch((e) => this.failed(e, 'ack', 0));
        else await durable;
      }
      const after = this.journal.head(gate.gateId);
      if (after.seq <= after.confirmed) this.since.delete(gate.gateId);
      else this.since.set(gate.gateId, Date.now());
      return Math.max(0, through - head.confirmed);
    } finally {
      this.stats.inFlight--;
    }
  }

  /** Fetch the denylist (a delta from the held version when possible) and apply it; true when it changed. */
  async syncDenylist(): Promise<boolean> {
    if (!this.denylist || !this.gates.length) return false;
    const fetch = async (since?: number) => {
      this.stats.requests++;
      this.stats.inFlight++;
      try {
        return await this.gates[0].client.denylist(since);
      } finally {
        this.stats.inFlight--;
      }
    };
    const doc = await fetch(this.denylist.version);
    this.stats.denylistFetches++;
    let changed = this.denylist.apply(doc);
    // A delta from another base (the service lost its history): ask for the full list.
    if (!changed && (doc as { kind?: string }).kind === 'delta' && (doc as { version?: number }).version! > this.denylist.version) changed = this.denylist.apply(await fetch());
    this.stats.denylistVersion = this.denylist.version;
    return changed;
  }

  /** Everything pending, now (the CLI's `journal upload`): stops at the first error, which it throws. */
  async uploadAll(): Promise<UploaderStats> {
    for (const g of this.gates) while ((await this.uploadBatch(g)) > 0);
    await this.journal.flushAcks();
    if (this.denylist) await this.syncDenylist();
    return this.stats;
  }

  /** Run in the background until stop(): uploads and denylist fetches, each in its own loop, errors retried with backoff. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = Promise.all([this.run(), this.denylistLoop()]).then(() => undefined);
  }

  /** Upload now rather than at the next round (e.g. after a burst of taps). */
  poke(): void {
    for (const w of [...(this.wakers ?? [])]) w();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.poke();
    await this.loop;
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0) return new Promise((r) => setImmediate(r));
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      const wakers = (this.wakers ??= new Set());
      function done() {
        clearTimeout(t);
        wakers.delete(done);
        resolve();
      }
      wakers.add(done);
    });
  }

  private failed(e: unknown, what: string, backoff: number): number {
    const log = this.options.log ?? (() => undefined);
    this.stats.errors++;
    this.stats.lastError = (e as Error).message;
    // A refusal (4xx) will not change by retrying at once; an unreachable service may come back: back off both.
    const next = Math.min(this.options.maxBackoffMs ?? 30_000, Math.max(500, backoff * 2));
    log({ event: `${what}_error`, message: (e as Error).message, status: e instanceof BackofficeHttpError ? e.status : undefined, retryInMs: next });
    if (!(e instanceof EticketError)) log({ event: `${what}_bug`, stack: (e as Error).stack });
    return next;
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (this.running) {
      let sent = 0;
      try {
        const queue = [...this.gates];
        const worker = async () => {
          for (let g = queue.shift(); g && this.running; g = queue.shift()) sent += await this.uploadBatch(g, false);
        };
        await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, this.gates.length) }, worker));
        backoff = 0;
      } catch (e) {
        backoff = this.failed(e, 'upload', backoff);
      }
      if (this.running) await this.pause(backoff || (sent > 0 ? 0 : (this.options.intervalMs ?? 500)));
    }
  }

  private async denylistLoop(): Promise<void> {
    if (!this.denylist) return;
    const log = this.options.log ?? (() => undefined);
    let backoff = 0;
    while (this.running) {
      try {
        if (await this.syncDenylist()) log({ event: 'denylist', version: this.denylist.version, cards: this.denylist.size });
        backoff = 0;
      } catch (e) {
        backoff = this.failed(e, 'denylist', backoff);
      }
      if (this.running) await this.pause(backoff || (this.options.denylistIntervalMs ?? 5000));
    }
  }
}
