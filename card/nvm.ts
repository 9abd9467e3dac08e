// The card's non-volatile memory: every persistent write of the applet goes through NvmStore.commit,
// which is atomic (redo journal, one durable append per command) and can simulate a power cut at any write point.

import { createHash, hash } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, unlinkSync, writeSync, ftruncateSync } from 'node:fs';
import { dirname } from 'node:path';
import { equal, readUint } from '../sdk/bytes.js';
import { fsyncDirectory, writeFileDurably } from '../sdk/durable-file.js';
import { EticketError } from '../sdk/errors.js';
import { FileLock } from '../sdk/file-lock.js';
import { PRIVATE_FILE_MODE, tightenMode } from '../sdk/files.js';

/** Thrown at the injected write point: the process "lost power". Reopen the card from its backend. */
export class PowerCutError extends EticketError {}

/** A physical write failed (disk full, I/O error): the command did not land, or landed whole on recovery. */
export class NvmWriteError extends EticketError {}

/** The image could not be read or its journal is unusable in a way recovery cannot fix. */
export class NvmCorruptError extends EticketError {}

/** The two files of a card image: the committed image and the write-ahead journal of a commit in progress. */
export type Region = 'image' | 'journal';

/** Physical storage of the two regions. Each write/truncate/remove call is one write point. */
export interface NvmBackend {
  readonly description: string;
  /** The whole region, or null when it does not exist. */
  read(region: Region): Uint8Array | null;
  /** Write `bytes` at `offset`, growing the region if needed. */
  write(region: Region, offset: number, bytes: Uint8Array): void;
  /** Cut the region to `length` bytes. */
  truncate(region: Region, length: number): void;
  /** Delete the region (no error when it does not exist). */
  remove(region: Region): void;
  /**
   * Make the region's earlier writes and truncates durable (a barrier). A backend with it may leave single writes
   * volatile until then, and NvmStore keeps a write-ahead journal across commands (one barrier per command); a
   * backend without it is taken as durable at every write (memory, a chip), and the journal is removed after each.
   */
  sync?(region: Region): void;
  /**
   * The region's bytes themselves, without a copy (memory backends): later writes change them in place, as on a
   * chip, until a write past the end or a truncate replaces them. Backends without it are read (copied) instead.
   */
  map?(region: Region): Uint8Array | null;
}

export class MemoryBackend implements NvmBackend {
  readonly description = 'memory';
  private regions: Record<Region, Uint8Array | null> = { image: null, journal: null };

  /**
   * A backend whose image is `image` itself, not a copy (a card farm's stored image): writes of the same length
   * change it in place, as on a chip; a write past its end or a truncate replaces it (read `map('image')` after).
   */
  static over(image: Uint8Array): MemoryBackend {
    const b = new MemoryBackend();
    b.regions.image = image;
    return b;
  }

  read(region: Region): Uint8Array | null {
    const r = this.regions[region];
    return r ? r.slice() : null;
  }

  /** The region itself, not a copy: the store works on it in place (NvmBackend.map). */
  map(region: Region): Uint8Array | null {
    return this.regions[region];
  }

  write(region: Region, offset: number, bytes: Uint8Array): void {
    let cur = this.regions[region];
    if (!cur || cur.length < offset + bytes.length) {
      const grown = new Uint8Array(offset + bytes.length);
      if (cur) grown.set(cur);
      cur = grown;
    }
    cur.set(bytes, offset);
    this.regions[region] = cur;
  }

  truncate(region: Region, length: number): void {
    const cur = this.regions[region];
    if (cur) this.regions[region] = cur.slice(0, length);
  }

  remove(region: Region): void {
    this.regions[region] = null;
  }

  /** Snapshot of both regions (tests compare images byte for byte). */
  snapshot(): { image: Uint8Array | null; journal: Uint8Array | null } {
    return { image: this.read('image'), journal: this.read('journal') };
  }
}

/**
 * A card image file `path` with its journal beside it (`path.journal`). Both hold the card's private keys
 * in clear: created 0600, and an existing one other users can read is tightened (or refused, InsecurePermissionsError).
 * With `lock`, the image is held exclusively (`path.lock`, sdk/file-lock) until close() or the process exits:
 * a second process opening it gets LockHeldError naming the holder, before it reads or writes anything.
 * Writes go to the page cache (they survive kill -9); sync() makes them durable (fdatasync, and the directory
 * once after the file was created), which NvmStore calls once per command for the journal. `durable = false`
 * (tests, benchmarks of the protocol alone) turns sync() into nothing.
 */
export class FileBackend implements NvmBackend {
  readonly description: string;
  private readonly lock?: FileLock;
  /** Open descriptors, kept across writes: opening and closing a file per write cost as much as the write. */
  private readonly fds: Partial<Record<Region, number>> = {};
  /** Regions created since their directory was last synced: their name must reach the disk too. */
  private readonly created = new Set<Region>();

  constructor(readonly path: string, private readonly durable = true, options: { lock?: boolean } = {}) {
    this.description = path;
    if (options.lock) this.lock = FileLock.tryAcquire(`${path}.lock`, `card image ${path}`);
    try {
      tightenMode(path);
      tightenMode(`${path}.journal`);
    } catch (error) {
      this.lock?.release(); // refused: nobody will close() this backend
      throw error;
    }
  }

  /** Close the files and release the image lock (if any); the backend must not be used afterwards. */
  close(): void {
    for (const r of ['image', 'journal'] as Region[]) this.closeFd(r);
    this.lock?.release();
  }

  private file(region: Region): string {
    return region === 'image' ? this.path : `${this.path}.journal`;
  }

  private fd(region: Region): number {
    let fd = this.fds[region];
    if (fd === undefined) {
      const f = this.file(region);
      const exists = existsSync(f);
      fd = openSync(f, exists ? 'r+' : 'w+', PRIVATE_FILE_MODE);
      if (!exists) this.created.add(region);
      this.fds[region] = fd;
    }
    return fd;
  }

  private closeFd(region: Region): void {
    const fd = this.fds[region];
    if (fd === undefined) return;
    delete this.fds[region];
    closeSync(fd);
  }

  read(region: Region): Uint8Array | null {
    const f = this.file(region);
    if (!existsSync(f)) return null;
    return new Uint8Array(readFileSync(f));
  }

  write(region: Region, offset: number, bytes: Uint8Array): void {
    const fd = this.fd(region);
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, offset + done);
  }

  truncate(region: Region, length: number): void {
    ftruncateSync(this.fd(region), length);
  }

  remove(region: Region): void {
    this.closeFd(region);
    this.created.delete(region);
    const f = this.file(region);
    if (existsSync(f)) unlinkSync(f);
  }

  sync(region: Region): void {
    if (!this.durable) return;
    let fd = this.fds[region];
    // A region only read so far (recovery reads the journal a killed process wrote): opened, so that its pages are synced.
    if (fd === undefined && existsSync(this.file(region))) fd = this.fd(region);
    if (fd !== undefined) fdatasyncSync(fd);
    if (this.created.delete(region)) fsyncDirectory(dirname(this.path));
  }

  /** Create the image in one step (a new card): a durable write-then-rename. */
  static createImage(path: string, image: Uint8Array): void {
    writeFileDurably(path, image, { mode: PRIVATE_FILE_MODE });
  }
}

/** Counts write points and cuts the power at write number `cutAt` (0-based), tearing that write. */
export class FaultInjector {
  writes = 0;
  constructor(public cutAt?: number) {}

  /** Count one write point; true when the power is cut here. */
  point(): boolean {
    const n = this.writes++;
    return this.cutAt !== undefined && n === this.cutAt;
  }
}

const JOURNAL_MAGIC = new Uint8Array([0x45, 0x4a, 0x4e, 0x4c]); // "EJNL"

/** Journal bytes after which a backend with sync() checkpoints (image synced, journal emptied): bounds replay at open. */
export const CHECKPOINT_BYTES = 1 << 20;

/**
 * Atomic page writes over a backend. commit(newImage) appends a journal record of the changed pages (with a SHA-256
 * over the record) and applies them; open() rolls every complete record forward, in order, and drops a torn last
 * one. So after any cut the image is the old or the new one, never a mix.
 * On a backend with sync() the record is the command's one durable write (one barrier per command): the image
 * writes stay volatile and the journal keeps the records until a checkpoint (image synced, then the journal cut to
 * nothing), after CHECKPOINT_BYTES. A record holds whole after-images, so replaying records the image already
 * has is harmless. On a backend without sync() the journal is removed after each command, as before.
 */
export class NvmStore {
  private image: Uint8Array;
  private dead = false;
  /** Bytes of journal records not yet checkpointed: where the next record goes. */
  private journalLength = 0;
  /** Without map(): the buffer the store's copy of the image lies at the start of, with room to append (patch). */
  private room: Uint8Array | null = null;
  /** Group commit (deferBarriers): a command's record gets no barrier of its own and the image file waits. */
  private deferred = false;
  /** Journal records written since the last barrier. */
  private unsynced = false;
  /** The image file lacks commands the journal holds (deferred mode): the checkpoint writes the whole image. */
  private imageBehind = false;

  constructor(
    private readonly backend: NvmBackend,
    private readonly pageSize = 256,
    public faults?: FaultInjector,
    private readonly checkpointBytes = CHECKPOINT_BYTES,
  ) {
    this.image = NvmStore.recover(backend);
  }

  /** Bring the backend to a consistent image (roll the valid journal records forward) and return it. */
  static recover(backend: NvmBackend): Uint8Array {
    const journal = backend.read('journal');
    if (journal) {
      const records = parseJournal(journal);
      if (records.length) {
        // Records read from the page cache may not be on the disk (group commit, or a kill between a record and its
        // barrier). So they are made durable before any image page written from them can reach the disk (else a
        // crash of the machine during this replay would leave pages of a command the journal no longer holds), and
        // durably gone once the image holds them (else a durable prefix of them, replayed after a later crash, would
        // take this newer image back).
        backend.sync?.('journal');
        for (const record of records) {
          for (const w of record.writes) backend.write('image', w.offset, w.bytes);
          backend.truncate('image', record.length);
        }
        // The image must hold what was rolled forward before the records that say so are gone.
        backend.sync?.('image');
        if (backend.sync) {
          backend.truncate('journal', 0);
          backend.sync('journal');
        }
      }
      backend.remove('journal');
    }
    // A memory backend's image is used where it lies: the card then holds one copy of it, not two.
    const image = backend.map ? backend.map('image') : backend.read('image');
    if (!image) throw new NvmCorruptError(`no card image at ${backend.description}`);
    return image;
  }

  /** The committed image. */
  get current(): Uint8Array {
    return this.image;
  }

  /** Where the image lives (a file path, or "memory"). */
  get backendDescription(): string {
    return this.backend.description;
  }

  /**
   * Make `next` the image, atomically: the pages that differ are journalled, then written. Throws PowerCutError at
   * an injected cut (the store is then dead). `next` becomes the store's (do not change it afterwards).
   */
  commit(next: Uint8Array): void {
    if (this.dead) throw new PowerCutError('card has no power (reopen it)');
    const writes: { offset: number; bytes: Uint8Array }[] = [];
    // Pages compared a block of pages at a time first: a LOAD onto a card holding many tickets changes the header's
    // pages and appends, and the unchanged pages between cost one comparison per block, not one per page.
    const block = this.pageSize * 64;
    const common = Math.min(next.length, this.image.length);
    for (let start = 0; start < next.length; start += block) {
      const end = Math.min(start + block, next.length);
      if (end <= common && equal(next.subarray(start, end), this.image.subarray(start, end))) continue;
      for (let off = start; off < end; off += this.pageSize) {
        const page = next.subarray(off, Math.min(off + this.pageSize, next.length));
        const old = this.image.subarray(off, Math.min(off + this.pageSize, this.image.length));
        if (!equal(page, old)) writes.push({ offset: off, bytes: page });
      }
    }
    if (writes.length === 0 && next.length === this.image.length) return;
    this.apply(next.length, writes);
    this.image = this.backend.map ? this.backend.map('image')! : next;
    this.room = null;
  }

  /**
   * Make the image the current one with `writes` applied and cut or grown to `length`, atomically: only these bytes
   * are journalled and written, under the same journal protocol and write points as commit. The caller knows which
   * bytes change. Writes are in ascending order of offset; when the image grows, they fill it to `length` (a LOAD
   * appends its record). Without map(), the store keeps its copy of the image in a buffer with room to grow, so an
   * append copies nothing the image already holds (the views of it stay views of the image).
   */
  patch(writes: { offset: number; bytes: Uint8Array }[], length = this.image.length): void {
    if (this.dead) throw new PowerCutError('card has no power (reopen it)');
    let filled = this.image.length;
    for (const w of writes) {
      if (w.offset + w.bytes.length > length) throw new RangeError('patch past the end of the image');
      if (w.offset > filled) throw new RangeError('patch leaves a gap past the end of the image');
      filled = Math.max(filled, w.offset + w.bytes.length);
    }
    if (filled < length) throw new RangeError('patch does not fill the image it grows to');
    if (writes.length === 0 && length === this.image.length) return;
    const written = this.apply(length, writes);
    if (this.backend.map) this.image = this.backend.map('image')!;
    else this.image = this.patchedCopy(length, written);
  }

  /** The store's copy of the image (no map()) with `writes` applied at `length`: in place, in its room when it grows. */
  private patchedCopy(length: number, writes: { offset: number; bytes: Uint8Array }[]): Uint8Array {
    let image = this.image;
    if (length > image.length) {
      const room = this.room;
      if (!room || room.buffer !== image.buffer || room.byteOffset !== image.byteOffset || room.length < length) {
        // A half more than needed: appending N records copies the image O(log N) times, not N times.
        this.room = new Uint8Array(length + (length >> 1));
        this.room.set(image);
      }
      image = this.room!.subarray(0, length);
    } else if (length < image.length) {
      image = image.subarray(0, length);
    }
    for (const w of writes) image.set(w.bytes, w.offset);
    return image;
  }

  /**
   * The journal protocol: the record appended (made durable where the backend syncs), the image writes, the
   * truncate; then, without sync() or past the checkpoint size, the checkpoint. Each write is a write point.
   * The image is written from the record's copies of the bytes (what recovery would write), so a write's bytes
   * may be a view of the image an earlier write changes (a DELETE moves the records after the deleted one).
   * Returns the writes as those copies.
   */
  private apply(length: number, writes: { offset: number; bytes: Uint8Array }[]): { offset: number; bytes: Uint8Array }[] {
    // Deferred: a full journal is checkpointed before the next record, while the store's image is the one the journal makes.
    if (this.deferred && this.journalLength >= this.checkpointBytes) this.checkpoint();
    const { record, copies } = encodeJournal(length, writes);
    const at = this.journalLength;
    this.physical(() => this.backend.write('journal', at, record), () => this.backend.write('journal', at, record.subarray(0, record.length >> 1)));
    this.journalLength += record.length;
    if (this.deferred) {
      // Group commit: the record is the command (recovery replays it); its barrier is flush()'s, and the image file
      // is written only after a barrier (the checkpoint), so that no image page reaches the disk before its record.
      this.unsynced = true;
      this.imageBehind = true;
      return copies;
    }
    this.physical(() => this.backend.sync?.('journal'), () => undefined, false);
    for (const w of copies) {
      this.physical(() => this.backend.write('image', w.offset, w.bytes), () => this.backend.write('image', w.offset, w.bytes.subarray(0, w.bytes.length >> 1)));
    }
    if (length < this.image.length) this.physical(() => this.backend.truncate('image', length), () => undefined);
    if (!this.backend.sync || this.journalLength >= this.checkpointBytes) this.checkpoint();
    return copies;
  }

  /**
   * Make the image durable, then drop the journal records it now holds: the file is cut to nothing (a backend
   * with sync(); its next record's barrier makes the cut durable too) or removed (without sync()).
   */
  checkpoint(): void {
    if (this.dead) throw new PowerCutError('card has no power (reopen it)');
    if (this.backend.sync) {
      if (this.journalLength === 0) return;
      if (this.imageBehind) {
        // Deferred commands: their records durable first, then the image they make (each page written is either
        // unchanged or rewritten by a record that recovery would replay: a torn write here is repaired at open).
        this.flush();
        const image = this.image;
        this.physical(() => this.backend.write('image', 0, image), () => this.backend.write('image', 0, image.subarray(0, image.length >> 1)));
        this.physical(() => this.backend.truncate('image', image.length), () => undefined);
        this.imageBehind = false;
      }
      this.physical(() => this.backend.sync!('image'), () => undefined, false);
      this.physical(() => this.backend.truncate('journal', 0), () => undefined);
      // Deferred: the cut made durable now, before records without a barrier of their own land at its start (a stale
      // record left behind them would otherwise be replayed after a crash of the machine).
      if (this.deferred) this.physical(() => this.backend.sync!('journal'), () => undefined, false);
      this.unsynced = false;
    } else {
      this.physical(() => this.backend.remove('journal'), () => undefined);
    }
    this.journalLength = 0;
  }

  /**
   * Group commit, for a host that records elsewhere what the card did (`eticket issue` marks the tickets a batch
   * loaded in its store): with `on`, a command writes its journal record without a barrier and the image file is
   * left to the checkpoint; flush() is the barrier, which the host calls before it tells anyone (its output, its
   * store) that those commands happened. Each command stays atomic, in the same order, through the same write
   * points: every answered command's record was written before its answer, so the power-cut model and kill -9 lose
   * nothing. A crash of the machine itself (the page cache lost) loses the commands after the last flush(), in order
   * (recovery stops at the first torn record), never a part of one. Turning it off flushes. A backend without sync()
   * (durable at every write) ignores it.
   */
  deferBarriers(on: boolean): void {
    if (!on) this.flush();
    this.deferred = on && this.backend.sync !== undefined;
  }

  /** The barrier for the commands since the last one (deferBarriers); nothing when there are none. */
  flush(): void {
    if (this.dead) throw new PowerCutError('card has no power (reopen it)');
    if (!this.unsynced) return;
    this.physical(() => this.backend.sync!('journal'), () => undefined, false);
    this.unsynced = false;
  }

  /** One physical operation; `point` false for a barrier, which writes nothing a cut could tear. */
  private physical(op: () => void, torn: () => void, point = true): void {
    if (point && this.faults?.point()) {
      torn();
      this.dead = true;
      throw new PowerCutError(`power cut at NVM write ${this.faults.writes - 1}`);
    }
    try {
      op();
    } catch (e) {
      throw new NvmWriteError(`NVM write failed on ${this.backend.description}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * After a failed write: bring the backend back to a consistent image (journal roll-forward or drop)
   * and adopt it, so RAM and NVM agree again. Returns the image now in force.
   */
  resync(): Uint8Array {
    this.image = NvmStore.recover(this.backend);
    this.journalLength = 0;
    this.room = null;
    this.unsynced = false;
    this.imageBehind = false;
    return this.image;
  }
}

/**
 * Where a small journal record is written (JOURNAL_SCRATCH bytes, one buffer for the process): apply() hands it to
 * the backend, whose write copies it, and writes the image from it, all before it returns; nothing keeps it.
 */
const JOURNAL_SCRATCH = 1024;
const journalScratch = new Uint8Array(JOURNAL_SCRATCH);

/**
 * A journal record of `writes`, and each write's bytes as a view of the record. A record of up to JOURNAL_SCRATCH
 * bytes (an in-place usage update's, every tap) lies in the process's scratch buffer: valid until the next call.
 */
function encodeJournal(length: number, writes: { offset: number; bytes: Uint8Array }[]): { record: Uint8Array; copies: { offset: number; bytes: Uint8Array }[] } {
  // Sized once: magic, length, count, (offset, size, bytes) per write, then SHA-256 of all that.
  let n = 12;
  for (const w of writes) n += 8 + w.bytes.length;
  const j = n + 32 <= JOURNAL_SCRATCH ? journalScratch.subarray(0, n + 32) : new Uint8Array(n + 32);
  const dv = new DataView(j.buffer, j.byteOffset, j.length);
  j.set(JOURNAL_MAGIC, 0);
  dv.setUint32(4, length);
  dv.setUint32(8, writes.length);
  const copies: { offset: number; bytes: Uint8Array }[] = [];
  let o = 12;
  for (const w of writes) {
    dv.setUint32(o, w.offset);
    dv.setUint32(o + 4, w.bytes.length);
    j.set(w.bytes, o + 8);
    copies.push({ offset: w.offset, bytes: j.subarray(o + 8, o + 8 + w.bytes.length) });
    o += 8 + w.bytes.length;
  }
  j.set(hash('sha256', j.subarray(0, n), 'buffer') as unknown as Uint8Array, n);
  return { record: j, copies };
}

/** The complete records of a journal, in order, up to the first torn or damaged one (a cut mid-append). */
function parseJournal(j: Uint8Array): { length: number; writes: { offset: number; bytes: Uint8Array }[] }[] {
  const records: { length: number; writes: { offset: number; bytes: Uint8Array }[] }[] = [];
  for (let at = 0; at < j.length; ) {
    const r = parseRecord(j, at);
    if (!r) break;
    records.push(r.record);
    at = r.end;
  }
  return records;
}

/** The record starting at `at`, and where it ends; null when it is torn, damaged or not a record. */
function parseRecord(j: Uint8Array, at: number): { record: { length: number; writes: { offset: number; bytes: Uint8Array }[] }; end: number } | null {
  if (j.length - at < 12 + 32 || !equal(j.subarray(at, at + 4), JOURNAL_MAGIC)) return null;
  const length = readUint(j.subarray(at + 4, at + 8));
  const count = readUint(j.subarray(at + 8, at + 12));
  const writes: { offset: number; bytes: Uint8Array }[] = [];
  let o = at + 12;
  for (let i = 0; i < count; i++) {
    if (o + 8 > j.length) return null;
    const offset = readUint(j.subarray(o, o + 4));
    const n = readUint(j.subarray(o + 4, o + 8));
    o += 8;
    if (o + n > j.length) return null;
    writes.push({ offset, bytes: j.subarray(o, o + n) });
    o += n;
  }
  if (o + 32 > j.length) return null;
  if (!equal(new Uint8Array(createHash('sha256').update(j.subarray(at, o)).digest()), j.subarray(o, o + 32))) return null;
  return { record: { length, writes: writes.map((w) => ({ offset: w.offset, bytes: w.bytes.slice() })) }, end: o + 32 };
}
