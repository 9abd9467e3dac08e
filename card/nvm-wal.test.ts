// The write-ahead journal of NvmStore on a backend with sync(): one barrier per command, and a power loss that
// drops any writes not yet behind a barrier (in any order, torn or not) still opens as the last answered commit.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { EticketCard } from './applet.js';
import { FileBackend, NvmStore, type NvmBackend, type Region } from './nvm.js';
import { hex } from '../sdk/bytes.js';
import { today, worldFor } from '../test/helpers/world.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { mulberry32 } from '../bench/sim-network.js';

/** node:fs's writes and fdatasyncs as the store's FileBackend makes them, by file, while `on` (one test reads them). */
const fsTrace = vi.hoisted(() => ({ on: false, calls: [] as string[] }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const file = (fd: number) => fs.readlinkSync(`/proc/self/fd/${fd}`);
  return {
    ...fs,
    writeSync: ((fd: number, ...rest: unknown[]) => {
      if (fsTrace.on) fsTrace.calls.push(`write ${file(fd)}`);
      return (fs.writeSync as (...a: unknown[]) => number)(fd, ...rest);
    }) as typeof fs.writeSync,
    fdatasyncSync: (fd: number) => {
      if (fsTrace.on) fsTrace.calls.push(`sync ${file(fd)}`);
      return fs.fdatasyncSync(fd);
    },
  };
});

const dir = mkdtempSync(join(tmpdir(), 'eticket-wal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Op = { kind: 'write'; offset: number; bytes: Uint8Array } | { kind: 'truncate'; length: number } | { kind: 'remove' };

/**
 * A disk with a page cache: writes land in the cache, sync() makes a region's cached writes durable. powerLoss()
 * keeps what was durable plus an arbitrary part of what was not: image writes each kept or lost (reordered),
 * the journal's unsynced writes kept up to some point, the last one possibly torn.
 */
class VolatileDisk implements NvmBackend {
  readonly description = 'volatile disk';
  private durable: Record<Region, Uint8Array | null> = { image: null, journal: null };
  private pending: Record<Region, Op[]> = { image: [], journal: [] };
  syncs: Record<Region, number> = { image: 0, journal: 0 };

  private live(region: Region): Uint8Array | null {
    return this.pending[region].reduce<Uint8Array | null>((cur, op) => applyOp(cur, op), this.durable[region]);
  }

  read(region: Region): Uint8Array | null {
    return this.live(region)?.slice() ?? null;
  }

  write(region: Region, offset: number, bytes: Uint8Array): void {
    this.pending[region].push({ kind: 'write', offset, bytes: bytes.slice() });
  }

  truncate(region: Region, length: number): void {
    this.pending[region].push({ kind: 'truncate', length });
  }

  remove(region: Region): void {
    this.pending[region].push({ kind: 'remove' });
  }

  sync(region: Region): void {
    this.syncs[region]++;
    this.durable[region] = this.live(region);
    this.pending[region] = [];
  }

  /** Lose power: `rand` picks which unsynced writes had reached the disk. */
  powerLoss(rand: () => number): void {
    let image = this.durable.image;
    for (const op of this.pending.image) if (op.kind !== 'write' || rand() < 0.5) image = applyOp(image, op);
    let journal = this.durable.journal;
    const kept = Math.floor(rand() * (this.pending.journal.length + 1));
    this.pending.journal.slice(0, kept).forEach((op, i) => {
      const last = i === kept - 1;
      journal = applyOp(journal, last && op.kind === 'write' && rand() < 0.5 ? { ...op, bytes: op.bytes.subarray(0, Math.floor(rand() * op.bytes.length)) } : op);
    });
    this.durable = { image, journal };
    this.pending = { image: [], journal: [] };
  }
}

function applyOp(cur: Uint8Array | null, op: Op): Uint8Array | null {
  if (op.kind === 'remove') return null;
  if (op.kind === 'truncate') return cur ? cur.slice(0, op.length) : cur;
  const out = new Uint8Array(Math.max(cur?.length ?? 0, op.offset + op.bytes.length));
  if (cur) out.set(cur);
  out.set(op.bytes, op.offset);
  return out;
}


/** A random image of `size` bytes (drawn from `rand`) written to `disk` and synced: the card before a trial. */
function durableRandomImage(disk: VolatileDisk, size: number, rand: () => number): Uint8Array {
  const image = new Uint8Array(size).map(() => Math.floor(rand() * 256));
  disk.write('image', 0, image);
  disk.sync('image');
  return image;
}

/** The next image: a few bytes changed here and there, sometimes longer or shorter. */
function mutate(image: Uint8Array, rand: () => number): Uint8Array {
  const length = Math.max(64, image.length + Math.floor((rand() - 0.4) * 600));
  const next = new Uint8Array(length);
  next.set(image.subarray(0, length));
  for (let i = 0, n = 1 + Math.floor(rand() * 6); i < n; i++) next[Math.floor(rand() * length)] = Math.floor(rand() * 256);
  return next;
}

describe('NvmStore write-ahead journal on a backend with sync()', () => {
  it('a power loss after any number of commits opens as the last commit, whatever unsynced writes reached the disk, across checkpoints', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = mulberry32(seed);
      const disk = new VolatileDisk();
      const first = durableRandomImage(disk, 1000, rand);
      // A small checkpoint size, so that some trials lose power just after one.
      let store = new NvmStore(disk, 256, undefined, 1 + Math.floor(rand() * 4000));
      let committed = first;
      for (let i = 0, n = 1 + Math.floor(rand() * 12); i < n; i++) {
        const next = mutate(committed, rand);
        store.commit(next);
        committed = next.slice();
        // Sometimes the power goes between commits, then the card is reopened and goes on.
        if (rand() < 0.2) {
          disk.powerLoss(rand);
          store = new NvmStore(disk, 256, undefined, 1 + Math.floor(rand() * 4000));
          expect(hex(store.current), `seed ${seed}, after commit ${i}`).toBe(hex(committed));
        }
      }
      disk.powerLoss(rand);
      expect(hex(new NvmStore(disk).current), `seed ${seed}`).toBe(hex(committed));
    }
  });

  it('patches that grow, cut and rewrite the image, mixed with whole-image commits: a power loss opens as the last one', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = mulberry32(seed ^ 0x9a7c);
      const disk = new VolatileDisk();
      const first = durableRandomImage(disk, 1000, rand);
      let store = new NvmStore(disk, 256, undefined, 1 + Math.floor(rand() * 4000));
      let committed = first;
      for (let i = 0, n = 1 + Math.floor(rand() * 12); i < n; i++) {
        const roll = rand();
        if (roll < 0.25) {
          const next = mutate(committed, rand);
          store.commit(next);
          committed = next.slice();
        } else {
          // A LOAD-like append, a DELETE-like move and cut, or bytes rewritten in place, with a header write first.
          const length = roll < 0.55 ? committed.length + 1 + Math.floor(rand() * 700) : roll < 0.8 ? Math.max(64, committed.length - 1 - Math.floor(rand() * 700)) : committed.length;
          const next = new Uint8Array(length);
          next.set(committed.subarray(0, Math.min(length, committed.length)));
          next[9] ^= 0xff;
          const from = 20 + Math.floor(rand() * (Math.min(length, committed.length) - 20));
          if (length < committed.length) next.set(committed.subarray(from + committed.length - length), from);
          for (let o = Math.min(length, committed.length); o < length; o++) next[o] = Math.floor(rand() * 256);
          const view = store.current;
          const writes: { offset: number; bytes: Uint8Array }[] = [{ offset: 9, bytes: next.subarray(9, 10) }];
          // The moved bytes as a view of the image they are moved within (what a DELETE hands the store).
          if (length < committed.length) writes.push({ offset: from, bytes: view.subarray(from + committed.length - length) });
          else if (length > committed.length) writes.push({ offset: committed.length, bytes: next.subarray(committed.length) });
          else writes.push({ offset: from, bytes: next.subarray(from, Math.min(length, from + 40)) });
          store.patch(writes, length);
          committed = next;
          expect(hex(store.current), `seed ${seed}, patch ${i}: the store's image`).toBe(hex(committed));
        }
        if (rand() < 0.2) {
          disk.powerLoss(rand);
          store = new NvmStore(disk, 256, undefined, 1 + Math.floor(rand() * 4000));
          expect(hex(store.current), `seed ${seed}, after commit ${i}`).toBe(hex(committed));
        }
      }
      disk.powerLoss(rand);
      expect(hex(new NvmStore(disk).current), `seed ${seed}`).toBe(hex(committed));
    }
  });

  it('one barrier per command: a commit syncs the journal once and the image not at all until a checkpoint', () => {
    const disk = new VolatileDisk();
    disk.write('image', 0, new Uint8Array(2048).fill(7));
    disk.sync('image');
    disk.syncs = { image: 0, journal: 0 };
    const store = new NvmStore(disk, 256, undefined, 10_000);
    let image = store.current.slice();
    for (let i = 0; i < 5; i++) {
      image = image.slice();
      image[i * 300] ^= 0xff;
      store.commit(image);
    }
    expect(disk.syncs).toEqual({ image: 0, journal: 5 });
    store.checkpoint();
    expect(disk.syncs).toEqual({ image: 1, journal: 5 });
    expect(disk.read('journal')?.length).toBe(0);
  });

  it('LOAD on a file-backed card is one synced journal record; reopening replays the records into the same image', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const path = join(dir, 'card.img');
    FileBackend.createImage(path, c.card.image);
    const syncs: Region[] = [];
    class CountingBackend extends FileBackend {
      override sync(region: Region): void {
        syncs.push(region);
        super.sync(region);
      }
    }
    const backend = new CountingBackend(path);
    const card = EticketCard.open(backend);
    const issuing = w.issuingTerminal(new CardSession(new EmulatorTransport(card)));
    for (let i = 0; i < 4; i++) {
      const face = w.ticketServer.createTicket({ serviceDate: today(w), train: `L${i}`, origin: 'BJS' });
      await issuing.load(w.authority.issue(face, c.credentials).sealed);
    }
    expect(syncs).toEqual(['journal', 'journal', 'journal', 'journal']);
    const after = card.image.slice();
    expect(readFileSync(`${path}.journal`).length, 'four records kept until a checkpoint').toBeGreaterThan(0);
    card.checkpoint();
    expect(syncs.slice(4)).toEqual(['image']);
    expect(readFileSync(`${path}.journal`).length, 'emptied by the checkpoint').toBe(0);
    backend.close();
    const reopened = EticketCard.open(new FileBackend(path));
    expect(hex(reopened.image)).toBe(hex(after));
    expect(reopened.persistent.tickets).toHaveLength(4);
  });
});

describe('NvmStore group commit (deferBarriers): barriers only at flush() and checkpoints', () => {
  it('a power loss opens as one of the commits since the last flush (never a part of one, never one before it); without a power loss, as the last commit', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = mulberry32(seed ^ 0x51f3);
      const disk = new VolatileDisk();
      const first = durableRandomImage(disk, 1000, rand);
      const open = () => {
        const s = new NvmStore(disk, 256, undefined, 1 + Math.floor(rand() * 4000));
        s.deferBarriers(true);
        return s;
      };
      let store = open();
      // The images a power loss may open as: the last flushed one, and every commit after it.
      let since: Uint8Array[] = [first];
      for (let i = 0, n = 1 + Math.floor(rand() * 14); i < n; i++) {
        const committed = since.at(-1)!;
        const roll = rand();
        let next: Uint8Array;
        if (roll < 0.4) {
          next = mutate(committed, rand);
          store.commit(next);
          next = next.slice();
        } else {
          // A LOAD-like append or a DELETE-like cut, through patch().
          const grow = roll < 0.75;
          const length = grow ? committed.length + 1 + Math.floor(rand() * 700) : Math.max(64, committed.length - 1 - Math.floor(rand() * 500));
          next = new Uint8Array(length);
          next.set(committed.subarray(0, Math.min(length, committed.length)));
          next[9] ^= 0xff;
          for (let o = committed.length; o < length; o++) next[o] = Math.floor(rand() * 256);
          store.patch(grow ? [{ offset: 9, bytes: next.subarray(9, 10) }, { offset: committed.length, bytes: next.subarray(committed.length) }] : [{ offset: 9, bytes: next.subarray(9, 10) }], length);
        }
        expect(hex(store.current), `seed ${seed}, commit ${i}: the store's image`).toBe(hex(next));
        since.push(next);
        const event = rand();
        if (event < 0.2) {
          store.flush();
          since = [next];
        } else if (event < 0.3) {
          // The process killed: the page cache (every write) survives, and the card opens as its last commit.
          store = open();
          expect(hex(store.current), `seed ${seed}, reopened after commit ${i}`).toBe(hex(next));
          since = [next]; // opening rolled the journal into the image and synced it
        } else if (event < 0.45) {
          disk.powerLoss(rand);
          store = open();
          expect(since.map(hex), `seed ${seed}, power lost after commit ${i}`).toContain(hex(store.current));
          since = [store.current.slice()];
        }
      }
      store.checkpoint();
      disk.powerLoss(rand);
      expect(hex(new NvmStore(disk).current), `seed ${seed}: checkpointed, then the power lost`).toBe(hex(since.at(-1)!));
    }
  });

  it('commits sync nothing; flush() syncs the journal once; a checkpoint makes the journal durable, then writes, syncs and cuts', () => {
    const disk = new VolatileDisk();
    disk.write('image', 0, new Uint8Array(2048).fill(7));
    disk.sync('image');
    disk.syncs = { image: 0, journal: 0 };
    const store = new NvmStore(disk, 256, undefined, 1 << 20);
    store.deferBarriers(true);
    let image = store.current.slice();
    for (let i = 0; i < 5; i++) {
      image = image.slice();
      image[i * 300] ^= 0xff;
      store.commit(image);
    }
    expect(disk.syncs).toEqual({ image: 0, journal: 0 });
    store.flush();
    store.flush(); // nothing new: no second barrier
    expect(disk.syncs).toEqual({ image: 0, journal: 1 });
    image = image.slice();
    image[1] ^= 0xff;
    store.commit(image);
    store.checkpoint();
    // The record's barrier, the image synced, the journal's cut synced.
    expect(disk.syncs).toEqual({ image: 1, journal: 3 });
    expect(disk.read('journal')?.length).toBe(0);
    disk.powerLoss(() => 0.99);
    expect(hex(new NvmStore(disk).current)).toBe(hex(image));
    // Turning group commit off flushes: the next commit has its own barrier again.
    store.commit(image.map((b, i) => (i === 5 ? b ^ 1 : b)));
    store.deferBarriers(false);
    expect(disk.syncs.journal).toBe(4);
    store.commit(image);
    expect(disk.syncs.journal).toBe(5);
  });
});

/** A VolatileDisk that, once armed, loses power at the next sync of the image (the machine crashes just before it). */
class CrashingDisk extends VolatileDisk {
  crashBeforeImageSync?: () => number;

  override sync(region: Region): void {
    const rand = this.crashBeforeImageSync;
    if (rand && region === 'image') {
      this.crashBeforeImageSync = undefined;
      this.powerLoss(rand);
      throw new Error('machine crashed');
    }
    super.sync(region);
  }
}

describe('NvmStore recovery of records that were never synced', () => {
  it('killed under group commit, then the machine crashes while the next open rolls the journal into the image: the card opens as one of the commits since the last flush, never a mix', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = mulberry32(seed ^ 0x7e11);
      const disk = new CrashingDisk();
      const first = durableRandomImage(disk, 1200, rand);
      const store = new NvmStore(disk, 256, undefined, 1 << 20);
      store.deferBarriers(true);
      let since: Uint8Array[] = [first];
      for (let i = 0, n = 2 + Math.floor(rand() * 8); i < n; i++) {
        const next = mutate(since.at(-1)!, rand);
        store.commit(next);
        since.push(next.slice());
        if (rand() < 0.15) {
          store.flush();
          since = [since.at(-1)!];
        }
      }
      // The process is killed (the page cache keeps every write); the next open crashes before the image's barrier.
      disk.crashBeforeImageSync = rand;
      expect(() => new NvmStore(disk), `seed ${seed}`).toThrow('machine crashed');
      expect(since.map(hex), `seed ${seed}: opened after the crash`).toContain(hex(new NvmStore(disk).current));
    }
  });
});

describe('FileBackend recovery of records a killed process left unsynced', () => {
  it('the journal read at open is fdatasynced before the image is written from it (the journal file was only read, never opened for writing)', () => {
    const path = join(dir, 'killed.img');
    const first = new Uint8Array(3000).fill(1);
    FileBackend.createImage(path, first);
    // Group commit, two commands, then a kill: records in the page cache, no barrier, the image file untouched.
    const killed = new FileBackend(path);
    const store = new NvmStore(killed);
    store.deferBarriers(true);
    const next = first.slice();
    next[5] = 9;
    store.commit(next.slice());
    next[2900] = 9;
    store.commit(next.slice());
    killed.close();
    fsTrace.calls = [];
    fsTrace.on = true;
    let reopened: NvmStore;
    try {
      reopened = new NvmStore(new FileBackend(path));
    } finally {
      fsTrace.on = false;
    }
    expect(hex(reopened.current)).toBe(hex(next));
    const firstImageWrite = fsTrace.calls.indexOf(`write ${path}`);
    expect(firstImageWrite, fsTrace.calls.join('; ')).toBeGreaterThanOrEqual(0);
    expect(fsTrace.calls.slice(0, firstImageWrite), 'the records made durable before any image page written from them').toContain(`sync ${path}.journal`);
  });
});
