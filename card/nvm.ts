// The card's non-volatile memory: every persistent write of the applet goes through NvmStore.commit,
// which is atomic (redo journal) and can simulate a power cut at any physical write point.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync, ftruncateSync } from 'node:fs';
import { equal, readUint } from '../sdk/bytes.js';
import { writeFileDurably } from '../sdk/durable-file.js';
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
 */
export class FileBackend implements NvmBackend {
  readonly description: string;
  private readonly lock?: FileLock;

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

  /** Release the image lock (if any); the backend must not be used afterwards. */
  close(): void {
    this.lock?.release();
  }

  private file(region: Region): string {
    return region === 'image' ? this.path : `${this.path}.journal`;
  }

  read(region: Region): Uint8Array | null {
    const f = this.file(region);
    if (!existsSync(f)) return null;
    return new Uint8Array(readFileSync(f));
  }

  write(region: Region, offset: number, bytes: Uint8Array): void {
    const fd = openSync(this.file(region), existsSync(this.file(region)) ? 'r+' : 'w+', PRIVATE_FILE_MODE);
    try {
      writeSync(fd, bytes, 0, bytes.length, offset);
      if (this.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  truncate(region: Region, length: number): void {
    const fd = openSync(this.file(region), 'r+');
    try {
      ftruncateSync(fd, length);
      if (this.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  remove(region: Region): void {
    const f = this.file(region);
    if (existsSync(f)) unlinkSync(f);
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

/**
 * Atomic page writes over a backend. commit(newImage) journals the changed pages (with a SHA-256 over
 * the journal), applies them, then removes the journal; open() rolls a complete journal forward and
 * drops a torn one. So after any cut the image is the old or the new one, never a mix.
 */
export class NvmStore {
  private image: Uint8Array;
  private dead = false;

  constructor(private readonly backend: NvmBackend, private readonly pageSize = 256, public faults?: FaultInjector) {
    this.image = NvmStore.recover(backend);
  }

  /** Bring the backend to a consistent image (roll a valid journal forward) and return it. */
  static recover(backend: NvmBackend): Uint8Array {
    const journal = backend.read('journal');
    if (journal) {
      const parsed = parseJournal(journal);
      if (parsed) {
        for (const w of parsed.writes) backend.write('image', w.offset, w.bytes);
        backend.truncate('image', parsed.length);
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
    for (let off = 0; off < next.length; off += this.pageSize) {
      const page = next.subarray(off, Math.min(off + this.pageSize, next.length));
      const old = this.image.subarray(off, Math.min(off + this.pageSize, this.image.length));
      if (!equal(page, old)) writes.push({ offset: off, bytes: page });
    }
    if (writes.length === 0 && next.length === this.image.length) return;
    this.apply(next.length, writes);
    this.image = this.backend.map ? this.backend.map('image')! : next;
  }

  /**
   * Change the image in place at a few ranges (same length), atomically: only these bytes are journalled and
   * written, under the same journal protocol and write points as commit. The caller knows which bytes changed.
   */
  patch(writes: { offset: number; bytes: Uint8Array }[]): void {
    if (this.dead) throw new PowerCutError('card has no power (reopen it)');
    for (const w of writes) {
      if (w.offset + w.bytes.length > this.image.length) throw new RangeError('patch past the end of the image');
    }
    this.apply(this.image.length, writes);
    if (this.backend.map) this.image = this.backend.map('image')!;
    else for (const w of writes) this.image.set(w.bytes, w.offset);
  }

  /** The journal protocol: journal, writes, truncate, journal removal; each a write point. */
  private apply(length: number, writes: { offset: number; bytes: Uint8Array }[]): void {
    const journal = encodeJournal(length, writes);
    this.physical(() => this.backend.write('journal', 0, journal), () => this.backend.write('journal', 0, journal.subarray(0, journal.length >> 1)));
    for (const w of writes) {
      this.physical(() => this.backend.write('image', w.offset, w.bytes), () => this.backend.write('image', w.offset, w.bytes.subarray(0, w.bytes.length >> 1)));
    }
    if (length < this.image.length) this.physical(() => this.backend.truncate('image', length), () => undefined);
    this.physical(() => this.backend.remove('journal'), () => undefined);
  }

  private physical(op: () => void, torn: () => void): void {
    if (this.faults?.point()) {
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
    return this.image;
  }
}

function encodeJournal(length: number, writes: { offset: number; bytes: Uint8Array }[]): Uint8Array {
  // Sized once: magic, length, count, (offset, size, bytes) per write, then SHA-256 of all that.
  let n = 12;
  for (const w of writes) n += 8 + w.bytes.length;
  const j = new Uint8Array(n + 32);
  const dv = new DataView(j.buffer);
  j.set(JOURNAL_MAGIC, 0);
  dv.setUint32(4, length);
  dv.setUint32(8, writes.length);
  let o = 12;
  for (const w of writes) {
    dv.setUint32(o, w.offset);
    dv.setUint32(o + 4, w.bytes.length);
    j.set(w.bytes, o + 8);
    o += 8 + w.bytes.length;
  }
  j.set(createHash('sha256').update(j.subarray(0, n)).digest(), n);
  return j;
}

function parseJournal(j: Uint8Array): { length: number; writes: { offset: number; bytes: Uint8Array }[] } | null {
  if (j.length < 12 + 32 || !equal(j.subarray(0, 4), JOURNAL_MAGIC)) return null;
  const body = j.subarray(0, j.length - 32);
  if (!equal(new Uint8Array(createHash('sha256').update(body).digest()), j.subarray(j.length - 32))) return null;
  const length = readUint(body.subarray(4, 8));
  const count = readUint(body.subarray(8, 12));
  const writes: { offset: number; bytes: Uint8Array }[] = [];
  let o = 12;
  for (let i = 0; i < count; i++) {
    if (o + 8 > body.length) return null;
    const offset = readUint(body.subarray(o, o + 4));
    const n = readUint(body.subarray(o + 4, o + 8));
    o += 8;
    if (o + n > body.length) return null;
    writes.push({ offset, bytes: body.slice(o, o + n) });
    o += n;
  }
  return o === body.length ? { length, writes } : null;
}
