// The gate's tap journal on disk (docs/gates.md): append-only segment files of CRC-framed records, written and
// fdatasync'ed before the gate opens, with group commit for the gates of one process, bounded in size, and
// recovered after a crash at any write (a torn tail is cut off; nothing a gate acted on is ever lost).

import { closeSync, fdatasync, fsyncSync, write, mkdirSync, openSync, readdirSync, readFileSync, readSync, existsSync, unlinkSync, ftruncateSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { concat, fromHex, hex, readUint, u32 } from '../sdk/bytes.js';
import { writeFileDurablyAsync } from '../sdk/durable-file.js';
import { EticketError, InvalidInputError } from '../sdk/errors.js';
import { FileLock } from '../sdk/file-lock.js';
import type { Signer } from '../sdk/crypto/suite.js';
import { decodeTapRecord, encodeTapRecord, GENESIS, recordHash, signCheckpoint, type Checkpoint, type TapFields, type TapRecord } from '../sdk/gate-journal.js';
import { decodeOne, template, tlv, TlvMap } from '../sdk/tlv.js';

/** The journal cannot take another record: every byte of its budget holds records not yet uploaded. */
export class JournalFullError extends EticketError {}
/** A write failed: the journal stops taking records until it is reopened (recovery then finds what landed). */
export class JournalFailedError extends EticketError {}
/** The files are damaged beyond a torn tail (a bad frame in the middle, a broken chain): a person must look. */
export class JournalCorruptError extends EticketError {}
/** Injected by tests: the process "lost power" at this write. Reopen the journal from its backend. */
export class JournalPowerCut extends EticketError {}

// ------------------------------------------------------------------------------------------------ backends --

/** Physical storage of a journal: named files. Each append / truncate / remove / replace is one write point. */
export interface JournalBackend {
  readonly description: string;
  list(): string[];
  read(name: string): Uint8Array | null;
  readRange(name: string, offset: number, length: number): Uint8Array;
  size(name: string): number;
  /** Write at the end of `name` (created if absent) and make it durable (fdatasync) before resolving. */
  append(name: string, bytes: Uint8Array): Promise<void> | void;
  truncate(name: string, length: number): void;
  remove(name: string): void;
  /** Replace `name` whole, durably (write-then-rename). */
  replace(name: string, bytes: Uint8Array): Promise<void> | void;
  close(): void;
}

export class MemoryJournalBackend implements JournalBackend {
  readonly description = 'memory';
  readonly files = new Map<string, Uint8Array>();
  list(): string[] {
    return [...this.files.keys()];
  }
  read(name: string): Uint8Array | null {
    const f = this.files.get(name);
    return f ? f.slice() : null;
  }
  readRange(name: string, offset: number, length: number): Uint8Array {
    return (this.files.get(name) ?? new Uint8Array(0)).slice(offset, offset + length);
  }
  size(name: string): number {
    return this.files.get(name)?.length ?? 0;
  }
  append(name: string, bytes: Uint8Array): void {
    this.files.set(name, concat(this.files.get(name) ?? new Uint8Array(0), bytes));
  }
  truncate(name: string, length: number): void {
    const f = this.files.get(name);
    if (f) this.files.set(name, f.slice(0, length));
  }
  remove(name: string): void {
    this.files.delete(name);
  }
  replace(name: string, bytes: Uint8Array): void {
    this.files.set(name, bytes.slice());
  }
  close(): void {}
}

/** Files in a directory; the segment being appended to keeps its descriptor open. */
export class FileJournalBackend implements JournalBackend {
  private fds = new Map<string, number>();
  constructor(readonly dir: string, private readonly durable = true) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  get description(): string {
    return this.dir;
  }
  list(): string[] {
    return readdirSync(this.dir).filter((n) => !n.startsWith('.'));
  }
  read(name: string): Uint8Array | null {
    const p = join(this.dir, name);
    return existsSync(p) ? new Uint8Array(readFileSync(p)) : null;
  }
  readRange(name: string, offset: number, length: number): Uint8Array {
    const fd = this.fd(name);
    const buf = new Uint8Array(length);
    let n = 0;
    while (n < length) {
      const r = readSync(fd, buf, n, length - n, offset + n);
      if (r === 0) break;
      n += r;
    }
    return n === length ? buf : buf.subarray(0, n);
  }
  size(name: string): number {
    return fstatSync(this.fd(name)).size;
  }
  private fd(name: string): number {
    let fd = this.fds.get(name);
    if (fd === undefined) {
      const p = join(this.dir, name);
      const created = !existsSync(p);
      fd = openSync(p, 'a+', 0o600);
      this.fds.set(name, fd);
      // A new file is durable only once its directory entry is.
      if (created && this.durable) this.syncDir();
    }
    return fd;
  }
  /** Asynchronous (libuv's thread pool): the event loop keeps serving other gates while the disk syncs. */
  async append(name: string, bytes: Uint8Array): Promise<void> {
    const fd = this.fd(name);
    for (let off = 0; off < bytes.length; ) off += await new Promise<number>((res, rej) => write(fd, bytes, off, bytes.length - off, null, (e, n) => (e ? rej(e) : res(n))));
    if (this.durable) await new Promise<void>((res, rej) => fdatasync(fd, (e) => (e ? rej(e) : res())));
  }
  truncate(name: string, length: number): void {
    const fd = this.fd(name);
    ftruncateSync(fd, length);
    if (this.durable) fsyncSync(fd);
  }
  remove(name: string): void {
    const fd = this.fds.get(name);
    if (fd !== undefined) closeSync(fd);
    this.fds.delete(name);
    const p = join(this.dir, name);
    if (existsSync(p)) unlinkSync(p);
  }
  replace(name: string, bytes: Uint8Array): Promise<void> {
    return writeFileDurablyAsync(join(this.dir, name), bytes, { mode: 0o600 });
  }
  private syncDir(): void {
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } catch {
      // some filesystems refuse fsync on a directory
    } finally {
      closeSync(fd);
    }
  }
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Counts write points and cuts the power at write `cutAt` (0-based), tearing that write (tests). */
export class JournalFaults {
  writes = 0;
  constructor(public cutAt?: number) {}
  point(): boolean {
    return this.writes++ === this.cutAt;
  }
}

/** A backend whose writes pass through a fault injector: a cut tears the write (half an append, no rename). */
export class FaultyJournalBackend implements JournalBackend {
  dead = false;
  constructor(readonly inner: JournalBackend, readonly faults: JournalFaults) {}
  get description(): string {
    return this.inner.description;
  }
  list() {
    return this.inner.list();
  }
  read(n: string) {
    return this.inner.read(n);
  }
  readRange(n: string, o: number, l: number) {
    return this.inner.readRange(n, o, l);
  }
  size(n: string) {
    return this.inner.size(n);
  }
  private point(torn: () => void): void {
    if (this.dead) throw new JournalPowerCut('no power (reopen the journal)');
    if (this.faults.point()) {
      torn();
      this.dead = true;
      throw new JournalPowerCut(`power cut at journal write ${this.faults.writes - 1}`);
    }
  }
  async append(n: string, b: Uint8Array): Promise<void> {
    this.point(() => void this.inner.append(n, b.subarray(0, b.length >> 1)));
    await this.inner.append(n, b);
  }
  truncate(n: string, l: number): void {
    this.point(() => undefined);
    this.inner.truncate(n, l);
  }
  remove(n: string): void {
    this.point(() => undefined);
    this.inner.remove(n);
  }
  async replace(n: string, b: Uint8Array): Promise<void> {
    this.point(() => undefined);
    await this.inner.replace(n, b);
  }
  close(): void {
    this.inner.close();
  }
}

// ---------------------------------------------------------------------------------------------- framing --

const FRAME = { TAP: 1, CHECKPOINT: 2 } as const;
/** length (4) ‖ kind (1) ‖ payload ‖ CRC-32 of kind ‖ payload (4). */
const FRAME_OVERHEAD = 9;
/** No tap record comes near this (a pki receipt is about 0.5 KB, a sym command 0.2 KB). */
export const MAX_RECORD_BYTES = 8192;
const STATE_FILE = 'journal.json';
const SEGMENT = /^seg-(\d{8})\.jnl$/;
const segmentName = (n: number) => `seg-${String(n).padStart(8, '0')}.jnl`;

function frame(kind: number, payload: Uint8Array): Uint8Array {
  const body = concat(new Uint8Array([kind]), payload);
  return concat(u32(payload.length), body, u32(crc32(body) >>> 0));
}

/** 6-byte big-endian unsigned (seqs and millisecond times). */
function u48(n: number): Uint8Array {
  return concat(u32(Math.floor(n / 2 ** 32)).subarray(2), u32(n % 2 ** 32));
}

function encodeCheckpoint(c: Checkpoint): Uint8Array {
  return template(0xe1, tlv(0x81, new TextEncoder().encode(c.gateId)), tlv(0x82, u48(c.seq)), tlv(0x90, c.head), tlv(0x83, u48(c.time)), tlv(0x9e, c.signature));
}

function decodeCheckpoint(payload: Uint8Array): Checkpoint {
  const { tlv: outer } = decodeOne(payload);
  const m = TlvMap.parse(outer.value, { allowed: [0x81, 0x82, 0x90, 0x83, 0x9e] });
  return { gateId: new TextDecoder().decode(m.require(0x81)), seq: readUint(m.bytes(0x82, 6, 6)), head: m.bytes(0x90, 32, 32).slice(), time: readUint(m.bytes(0x83, 6, 6)), signature: m.require(0x9e).slice() };
}

export type JournalEntry = { kind: 'tap'; record: TapRecord; segment: string; offset: number } | { kind: 'checkpoint'; checkpoint: Checkpoint; segment: string; offset: number };

/** Parse the frames of one segment; stops at the first invalid one and says where (a torn tail, or damage). */
export function parseSegment(name: string, bytes: Uint8Array): { entries: JournalEntry[]; validLength: number; error?: string } {
  const entries: JournalEntry[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + FRAME_OVERHEAD > bytes.length) return { entries, validLength: o, error: `truncated frame at offset ${o}` };
    const len = readUint(bytes.subarray(o, o + 4));
    if (len > MAX_RECORD_BYTES || o + FRAME_OVERHEAD + len > bytes.length) return { entries, validLength: o, error: `truncated or oversized frame at offset ${o}` };
    const body = bytes.subarray(o + 4, o + 5 + len);
    if ((crc32(body) >>> 0) !== readUint(bytes.subarray(o + 5 + len, o + 9 + len))) return { entries, validLength: o, error: `CRC mismatch at offset ${o}` };
    const payload = body.subarray(1);
    try {
      if (body[0] === FRAME.TAP) entries.push({ kind: 'tap', record: decodeTapRecord(payload.slice()), segment: name, offset: o });
      else if (body[0] === FRAME.CHECKPOINT) entries.push({ kind: 'checkpoint', checkpoint: decodeCheckpoint(payload), segment: name, offset: o });
      else return { entries, validLength: o, error: `unknown frame kind ${body[0]} at offset ${o}` };
    } catch (e) {
      return { entries, validLength: o, error: `undecodable record at offset ${o}: ${(e as Error).message}` };
    }
    o += FRAME_OVERHEAD + len;
  }
  return { entries, validLength: o };
}

// ---------------------------------------------------------------------------------------------- journal --

export interface JournalOptions {
  /** Budget for the files (default 64 MiB, about 100,000 taps): full of records not yet uploaded, taps are refused. */
  maxBytes?: number;
  /** A new segment starts past this size (default 4 MiB); uploaded segments are removed whole. */
  segmentBytes?: number;
  /** Hold the directory exclusively (default true for a directory). */
  lock?: boolean;
  /**
   * Acknowledgements arriving within this many ms share one durable write of the state file (default 0: written at
   * once). The back office's confirmation counts at once (head().confirmed: the next upload starts after it); only
   * its record on disk, and the removal of uploaded segments, wait. A crash in between re-uploads those records,
   * which the back office stores once (duplicates).
   */
  ackDelayMs?: number;
}

interface Located {
  seq: number;
  segment: string;
  offset: number;
  length: number;
}

interface GateChain {
  /** Last seq assigned (appended or queued) and its hash. */
  lastSeq: number;
  lastHash: Uint8Array;
  /** Last seq known durable, and its hash. */
  durableSeq: number;
  durableHash: Uint8Array;
  /** The back office stored every record up to this seq, and the state file says so. */
  acked: number;
  ackedHash: Uint8Array;
  /** The back office said it stored every record up to this seq (≥ acked; the state file may not say so yet). */
  confirmed: number;
  /** Durable records not yet acknowledged, in seq order. */
  pending: Located[];
  /** The newest checkpoint written. */
  checkpoint?: Checkpoint;
}

interface Segment {
  name: string;
  n: number;
  size: number;
  /** Highest seq per gate in this segment: the segment goes once each is acknowledged. */
  maxSeq: Map<string, number>;
}

interface Pending {
  bytes: Uint8Array;
  gate: string;
  record?: TapRecord;
  checkpoint?: Checkpoint;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface JournalStats {
  bytes: number;
  maxBytes: number;
  segments: number;
  gates: Record<string, { lastSeq: number; durableSeq: number; acked: number; pending: number }>;
  appended: number;
  flushes: number;
  /** Taps refused because the journal was full. */
  refusedFull: number;
  failed?: string;
}

interface StateFile {
  format: 'eticket-journal/1';
  gates: Record<string, { acked: number; ackedHash: string }>;
}

/** A journal directory for the gates of one process: one chain per gate, one file budget, group commit. */
export class GateJournal {
  private readonly gates = new Map<string, GateChain>();
  private readonly segments: Segment[] = [];
  private queue: Pending[] = [];
  private flushing = false;
  private failure?: Error;
  private reserved = 0;
  private readonly ackWanted = new Map<string, { seq: number; hash: Uint8Array }>();
  private ackScheduled?: Promise<void>;
  private ackChain: Promise<void> = Promise.resolve();
  private bytes = 0;
  private closed = false;
  private appended = 0;
  private flushes = 0;
  private refusedFull = 0;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly ackDelayMs: number;

  private constructor(readonly backend: JournalBackend, options: JournalOptions, private readonly lock?: FileLock) {
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.ackDelayMs = options.ackDelayMs ?? 0;
    this.segmentBytes = Math.min(options.segmentBytes ?? 4 * 1024 * 1024, this.maxBytes);
    if (this.maxBytes < 4 * MAX_RECORD_BYTES) throw new InvalidInputError(`a journal needs at least ${4 * MAX_RECORD_BYTES} bytes`);
  }

  /** Open (or create) the journal in `dir`, held by this process; recovers from a crash at any write. */
  static openDir(dir: string, options: JournalOptions = {}): GateJournal {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lock = options.lock === false ? undefined : FileLock.tryAcquire(join(dir, 'journal.lock'), `gate journal ${dir}`);
    try {
      return GateJournal.open(new FileJournalBackend(dir), options, lock);
    } catch (e) {
      lock?.release();
      throw e;
    }
  }

  static open(backend: JournalBackend, options: JournalOptions = {}, lock?: FileLock): GateJournal {
    const j = new GateJournal(backend, options, lock);
    j.recover();
    return j;
  }

  /** Read-only view of a journal directory (`eticket journal show`): no lock, no repair, a torn tail is skipped. */
  static readEntries(backend: JournalBackend): { entries: JournalEntry[]; state: StateFile; problems: string[] } {
    const state = readState(backend);
    const problems: string[] = [];
    const entries: JournalEntry[] = [];
    for (const name of segmentNames(backend)) {
      const p = parseSegment(name, backend.read(name)!);
      entries.push(...p.entries);
      if (p.error) problems.push(`${name}: ${p.error}`);
    }
    return { entries, state, problems };
  }

  private recover(): void {
    const state = readState(this.backend);
    for (const [gate, s] of Object.entries(state.gates)) {
      const h = fromHex(s.ackedHash);
      this.gates.set(gate, { lastSeq: s.acked, lastHash: h, durableSeq: s.acked, durableHash: h, acked: s.acked, ackedHash: h, confirmed: s.acked, pending: [] });
    }
    const names = segmentNames(this.backend);
    names.forEach((name, i) => {
      const bytes = this.backend.read(name)!;
      const p = parseSegment(name, bytes);
      if (p.error) {
        // Only the segment being appended to can end in a torn frame; anywhere else it is damage.
        if (i !== names.length - 1) throw new JournalCorruptError(`journal ${this.backend.description}: ${name} is damaged (${p.error}) and is not the last segment`);
        this.backend.truncate(name, p.validLength);
      }
      const seg: Segment = { name, n: Number(SEGMENT.exec(name)![1]), size: p.validLength, maxSeq: new Map() };
      for (const e of p.entries) {
        if (e.kind === 'checkpoint') {
          const g = this.chain(e.checkpoint.gateId);
          if (!g.checkpoint || g.checkpoint.seq <= e.checkpoint.seq) g.checkpoint = e.checkpoint;
          continue;
        }
        const r = e.record;
        const g = this.chain(r.gateId);
        if (r.seq <= g.acked) {
          seg.maxSeq.set(r.gateId, Math.max(seg.maxSeq.get(r.gateId) ?? 0, r.seq));
          if (r.seq === g.acked && !equalBytes(r.hash, g.ackedHash)) throw new JournalCorruptError(`journal ${this.backend.description}: record ${r.gateId}/${r.seq} is not the one acknowledged`);
          continue; // uploaded already; the segment will go once all of it is
        }
        if (r.seq !== g.lastSeq + 1 || !equalBytes(r.prev, g.lastHash)) {
          throw new JournalCorruptError(`journal ${this.backend.description}: gate ${r.gateId} record ${r.seq} does not follow ${g.lastSeq} (chain broken)`);
        }
        g.lastSeq = g.durableSeq = r.seq;
        g.lastHash = g.durableHash = r.hash;
        g.pending.push({ seq: r.seq, segment: name, offset: e.offset, length: FRAME_OVERHEAD + r.encoded.length });
        seg.maxSeq.set(r.gateId, r.seq);
      }
      this.segments.push(seg);
      this.bytes += seg.size;
    });
    this.dropUploadedSegments(false);
  }

  private chain(gate: string): GateChain {
    let g = this.gates.get(gate);
    if (!g) {
      g = { lastSeq: 0, lastHash: GENESIS, durableSeq: 0, durableHash: GENESIS, acked: 0, ackedHash: GENESIS, confirmed: 0, pending: [] };
      this.gates.set(gate, g);
    }
    return g;
  }

  /** Gates with records in this journal. */
  get gateIds(): string[] {
    return [...this.gates.keys()];
  }

  /** A gate's durable head, what the state file says is acknowledged, and what the back office confirmed (≥ acked). */
  head(gate: string): { seq: number; hash: Uint8Array; acked: number; confirmed: number; pending: number } {
    const g = this.chain(gate);
    return { seq: g.durableSeq, hash: g.durableHash, acked: g.acked, confirmed: g.confirmed, pending: g.pending.length };
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /**
   * Room for one more tap? Reserves it (the tap then journals it, or cancels): concurrent taps of several gates
   * cannot together overrun the budget. Returns false when full or failed; the gate then refuses before touching
   * the card.
   */
  reserve(): boolean {
    if (this.failure || this.closed) return false;
    if (this.bytes + this.queuedBytes() + (this.reserved + 1) * (MAX_RECORD_BYTES + FRAME_OVERHEAD) > this.maxBytes) {
      this.refusedFull++;
      return false;
    }
    this.reserved++;
    return true;
  }

  release(): void {
    if (this.reserved > 0) this.reserved--;
  }

  private queuedBytes(): number {
    let n = 0;
    for (const p of this.queue) n += p.bytes.length;
    return n;
  }

  /**
   * Journal one tap of `fields.gateId`: the record is chained on the gate's previous one and the promise
   * resolves once it is on disk (fdatasync), together with whatever other taps arrived meanwhile (group commit).
   * Consumes a reservation if one is held. Throws JournalFailedError after a failed write.
   */
  append(fields: TapFields): Promise<TapRecord> {
    this.release();
    if (this.failure) return Promise.reject(new JournalFailedError(`journal ${this.backend.description} failed earlier (${this.failure.message}): reopen it`));
    if (this.closed) return Promise.reject(new JournalFailedError('journal closed'));
    const g = this.chain(fields.gateId);
    const record = encodeTapRecord(fields, g.lastSeq + 1, g.lastHash);
    if (record.encoded.length > MAX_RECORD_BYTES) return Promise.reject(new InvalidInputError(`journal record of ${record.encoded.length} bytes exceeds ${MAX_RECORD_BYTES}`));
    g.lastSeq = record.seq;
    g.lastHash = record.hash;
    return new Promise<TapRecord>((resolve, reject) => {
      this.queue.push({ bytes: frame(FRAME.TAP, record.encoded), gate: fields.gateId, record, resolve: () => resolve(record), reject });
      this.schedule();
    });
  }

  /** Sign and journal a checkpoint over gate `gate`'s durable head (no-op when the newest one already covers it). */
  async checkpoint(gate: string, signer: Signer, now = Date.now()): Promise<Checkpoint | undefined> {
    const g = this.chain(gate);
    if (g.durableSeq === 0) return undefined;
    if (g.checkpoint && g.checkpoint.seq === g.durableSeq) return g.checkpoint;
    return this.checkpointAt(gate, g.durableSeq, signer, now);
  }

  /** A checkpoint at `seq` (durable, not yet acknowledged or the acknowledged head): what an upload batch ends with. */
  async checkpointAt(gate: string, seq: number, signer: Signer, now = Date.now()): Promise<Checkpoint> {
    const g = this.chain(gate);
    if (g.checkpoint?.seq === seq) return g.checkpoint;
    const head = seq === g.durableSeq ? g.durableHash : seq === g.acked ? g.ackedHash : this.readEncoded(gate, seq, 1)?.lastHash;
    if (!head || seq > g.durableSeq) throw new InvalidInputError(`gate ${gate} has no durable record ${seq} to checkpoint`);
    const c = signCheckpoint(signer, { gateId: gate, seq, head, time: now });
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes: frame(FRAME.CHECKPOINT, encodeCheckpoint(c)), gate, checkpoint: c, resolve, reject });
      this.schedule();
    });
    return c;
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = true;
    // One tick lets the taps of every gate in this process that are ready now share the write and the fdatasync;
    // while that write is in flight, the next taps queue up for the following one (group commit).
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    while (this.queue.length && !this.failure) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.write(batch);
      } catch (e) {
        this.failure = e as Error;
        const err = e instanceof JournalPowerCut ? e : new JournalFailedError(`journal write failed on ${this.backend.description}: ${(e as Error).message}`, { cause: e });
        for (const p of [...batch, ...this.queue]) p.reject(err);
        this.queue = [];
        break;
      }
      for (const p of batch) p.resolve();
    }
    this.flushing = false;
  }

  private async write(batch: Pending[]): Promise<void> {
    let seg = this.segments[this.segments.length - 1];
    const total = batch.reduce((n, p) => n + p.bytes.length, 0);
    if (!seg || (seg.size > 0 && seg.size + total > this.segmentBytes)) {
      seg = { name: segmentName((seg?.n ?? 0) + 1), n: (seg?.n ?? 0) + 1, size: 0, maxSeq: new Map() };
      this.segments.push(seg);
    }
    await this.backend.append(seg.name, concat(...batch.map((p) => p.bytes)));
    this.flushes++;
    let offset = seg.size;
    for (const p of batch) {
      const g = this.chain(p.gate);
      if (p.record) {
        g.durableSeq = p.record.seq;
        g.durableHash = p.record.hash;
        g.pending.push({ seq: p.record.seq, segment: seg.name, offset, length: p.bytes.length });
        seg.maxSeq.set(p.gate, p.record.seq);
        this.appended++;
      } else if (p.checkpoint) {
        if (!g.checkpoint || g.checkpoint.seq <= p.checkpoint.seq) g.checkpoint = p.checkpoint;
      }
      offset += p.bytes.length;
    }
    seg.size += total;
    this.bytes += total;
  }

  /** Durable records of `gate` from `fromSeq`, at most `limit` (what an upload sends). */
  readRecords(gate: string, fromSeq: number, limit: number): TapRecord[] {
    const g = this.chain(gate);
    const first = g.pending.findIndex((p) => p.seq >= fromSeq);
    if (first < 0) return [];
    return g.pending.slice(first, first + limit).map((p) => {
      const bytes = this.backend.readRange(p.segment, p.offset, p.length);
      return decodeTapRecord(bytes.slice(5, bytes.length - 4));
    });
  }

  /**
   * The encoded bytes of `gate`'s durable records from `fromSeq` (at most `limit`), without decoding them (what
   * an upload sends), with the seq and hash of the last one. Reads each segment's span in one call.
   */
  readEncoded(gate: string, fromSeq: number, limit: number): { records: Uint8Array[]; lastSeq: number; lastHash: Uint8Array } | undefined {
    const g = this.chain(gate);
    const first = g.pending.findIndex((p) => p.seq >= fromSeq);
    if (first < 0) return undefined;
    const list = g.pending.slice(first, first + limit);
    const records: Uint8Array[] = [];
    for (let i = 0; i < list.length; ) {
      // Consecutive frames of one segment are often adjacent: one read for the run.
      let j = i;
      while (j + 1 < list.length && list[j + 1].segment === list[i].segment && list[j + 1].offset === list[j].offset + list[j].length) j++;
      const span = this.backend.readRange(list[i].segment, list[i].offset, list[j].offset + list[j].length - list[i].offset);
      for (let k = i; k <= j; k++) {
        const at = list[k].offset - list[i].offset;
        records.push(span.subarray(at + 5, at + list[k].length - 4));
      }
      i = j + 1;
    }
    const last = list[list.length - 1];
    const lastHash = last.seq === g.durableSeq ? g.durableHash : recordHash(records[records.length - 1]);
    return { records, lastSeq: last.seq, lastHash };
  }

  /**
   * The back office has stored every record of `gate` up to `seq`: remember it durably, then remove the
   * segments that hold only acknowledged records. Resolves false when `seq` is not a durable record here.
   * Acknowledgements that arrive together (within ackDelayMs) share one write of the state file (asynchronous: taps
   * go on). `seq` counts as confirmed at once (head().confirmed); the promise resolves once the state file says so.
   */
  ack(gate: string, seq: number): Promise<boolean> {
    const g = this.chain(gate);
    if (seq > g.durableSeq) return Promise.resolve(false);
    const wanted = this.ackWanted.get(gate);
    if (seq <= g.acked && !wanted) return Promise.resolve(true);
    if (!wanted || wanted.seq < seq) this.ackWanted.set(gate, { seq, hash: seq === g.durableSeq ? g.durableHash : this.readEncoded(gate, seq, 1)!.lastHash });
    if (seq > g.confirmed) g.confirmed = seq;
    if (!this.ackScheduled) {
      const delay = this.ackDelayMs;
      this.ackScheduled = this.ackChain.then(async () => {
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        this.ackScheduled = undefined;
        return this.writeAcks();
      });
      this.ackChain = this.ackScheduled.catch(() => undefined);
    }
    return this.ackScheduled.then(() => true);
  }

  private async writeAcks(): Promise<void> {
    if (this.failure) throw new JournalFailedError(`journal failed earlier (${this.failure.message})`);
    const wanted = new Map(this.ackWanted);
    this.ackWanted.clear();
    const state = this.stateGates();
    for (const [gate, w] of wanted) if (w.seq > (state[gate]?.acked ?? 0)) state[gate] = { acked: w.seq, ackedHash: hex(w.hash) };
    try {
      await this.backend.replace(STATE_FILE, new TextEncoder().encode(JSON.stringify({ format: 'eticket-journal/1', gates: state } satisfies StateFile)));
    } catch (e) {
      this.failure = e as Error;
      throw e instanceof JournalPowerCut ? e : new JournalFailedError(`journal write failed on ${this.backend.description}: ${(e as Error).message}`, { cause: e });
    }
    for (const [gate, w] of wanted) {
      const g = this.chain(gate);
      if (w.seq <= g.acked) continue;
      g.acked = w.seq;
      g.ackedHash = w.hash;
      g.pending.splice(0, g.pending.findIndex((p) => p.seq === w.seq) + 1);
    }
    // Only now that the state says so may the records go: a crash in between finds them still there.
    this.dropUploadedSegments(true);
  }

  private stateGates(): StateFile['gates'] {
    const out: StateFile['gates'] = {};
    for (const [gate, g] of this.gates) if (g.acked > 0) out[gate] = { acked: g.acked, ackedHash: hex(g.ackedHash) };
    return out;
  }

  private dropUploadedSegments(guarded: boolean): void {
    // The newest segment stays (it is appended to); an older one goes when the back office has all of it.
    while (this.segments.length > 1) {
      const s = this.segments[0];
      if (![...s.maxSeq].every(([gate, seq]) => seq <= this.chain(gate).acked)) break;
      if (guarded) this.guard(() => this.backend.remove(s.name));
      else this.backend.remove(s.name);
      this.segments.shift();
      this.bytes -= s.size;
    }
  }

  private guard(op: () => void): void {
    if (this.failure) throw new JournalFailedError(`journal failed earlier (${this.failure.message})`);
    try {
      op();
    } catch (e) {
      this.failure = e as Error;
      throw e instanceof JournalPowerCut ? e : new JournalFailedError(`journal write failed on ${this.backend.description}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Resolves once every acknowledgement made so far is in the state file; throws if the journal failed. */
  async flushAcks(): Promise<void> {
    for (let c = this.ackChain; ; c = this.ackChain) {
      await c;
      if (c === this.ackChain) break;
    }
    if (this.failure) throw new JournalFailedError(`journal ${this.backend.description} failed (${this.failure.message})`);
  }

  /** Resolves once every queued record is durable (or failed). */
  async drain(): Promise<void> {
    while (this.flushing || this.queue.length) await new Promise((r) => setImmediate(r));
  }

  stats(): JournalStats {
    const gates: JournalStats['gates'] = {};
    for (const [gate, g] of this.gates) gates[gate] = { lastSeq: g.lastSeq, durableSeq: g.durableSeq, acked: g.acked, pending: g.pending.length };
    return { bytes: this.bytes, maxBytes: this.maxBytes, segments: this.segments.length, gates, appended: this.appended, flushes: this.flushes, refusedFull: this.refusedFull, failed: this.failure?.message };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.drain();
    await this.ackChain;
    this.closed = true;
    this.backend.close();
    this.lock?.release();
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function segmentNames(backend: JournalBackend): string[] {
  return backend
    .list()
    .filter((n) => SEGMENT.test(n))
    .sort();
}

function readState(backend: JournalBackend): StateFile {
  const raw = backend.read(STATE_FILE);
  if (!raw) return { format: 'eticket-journal/1', gates: {} };
  try {
    const s = JSON.parse(new TextDecoder().decode(raw)) as StateFile;
    if (s.format !== 'eticket-journal/1' || typeof s.gates !== 'object') throw new Error('not a journal state file');
    return s;
  } catch (e) {
    throw new JournalCorruptError(`journal ${backend.description}: ${STATE_FILE} is unreadable (${(e as Error).message})`);
  }
}
