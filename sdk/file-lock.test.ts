// FileLock between real processes: mutual exclusion (no lost increments), a clear refusal naming the
// holder, stale locks of dead processes taken over, reused PIDs not mistaken for the holder.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLock, LockHeldError, ownerAlive } from './file-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'eticket-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const WORKER = fileURLToPath(new URL('../test/helpers/lock-worker.ts', import.meta.url));

function run(args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, ...args], { stdio: 'inherit' });
    child.on('close', resolve);
  });
}

/** PID of a process that has certainly exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
}

describe('FileLock', () => {
  it('three processes incrementing under the lock lose no increment, starting from a stale lock they race to take over', async () => {
    const lock = join(dir, 'counter.lock');
    const counter = join(dir, 'counter');
    writeFileSync(counter, '0');
    writeFileSync(lock, JSON.stringify({ pid: deadPid(), since: 'then', nonce: 'stale' }));
    const codes = await Promise.all([run([lock, counter, '40']), run([lock, counter, '40']), run([lock, counter, '40'])]);
    expect(codes).toEqual([0, 0, 0]);
    expect(Number(readFileSync(counter, 'utf8'))).toBe(120);
    expect(existsSync(lock)).toBe(false);
  });

  it('a live holder is named in the refusal, and a second lock in the same process is refused too', () => {
    const path = join(dir, 'held.lock');
    const lock = FileLock.tryAcquire(path, 'card image x.img', 'eticket issue');
    try {
      expect(() => FileLock.tryAcquire(path, 'card image x.img')).toThrow(LockHeldError);
      try {
        FileLock.tryAcquire(path, 'card image x.img');
      } catch (e) {
        expect((e as LockHeldError).message).toMatch(new RegExp(`card image x.img is in use by process ${process.pid} \\(eticket issue\\)`));
      }
    } finally {
      lock.release();
    }
    expect(existsSync(path)).toBe(false);
  });

  it('a lock left by a dead process is taken over', () => {
    const path = join(dir, 'stale.lock');
    writeFileSync(path, JSON.stringify({ pid: deadPid(), since: 'then', nonce: 'old' }));
    const lock = FileLock.tryAcquire(path, 'stale thing');
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('a live PID with another start time (a reused PID) is not the holder; a damaged lock file is stale', () => {
    expect(ownerAlive({ pid: process.pid, start: '1', since: '', nonce: '' })).toBe(false);
    expect(ownerAlive({ pid: process.pid, since: '', nonce: '' })).toBe(true);
    const path = join(dir, 'garbage.lock');
    writeFileSync(path, 'not json');
    FileLock.tryAcquire(path, 'garbage').release();
  });

  it('waits for a holder that releases, and gives up after waitMs otherwise', async () => {
    const path = join(dir, 'wait.lock');
    const first = FileLock.tryAcquire(path, 'w');
    setTimeout(() => first.release(), 100);
    const second = await FileLock.acquire(path, 'w', { waitMs: 5_000 });
    const t = FileLock.acquire(path, 'w', { waitMs: 50 });
    await expect(t).rejects.toThrow(LockHeldError);
    second.release();
  });

  it('a wait the caller aborts ends at once with the holder named, long before waitMs; an aborted signal does not wait at all', async () => {
    const path = join(dir, 'abort.lock');
    const holder = FileLock.tryAcquire(path, 'a', 'the holder');
    try {
      const stop = new AbortController();
      const waiting = FileLock.acquire(path, 'a', { waitMs: 600_000, signal: stop.signal });
      setTimeout(() => stop.abort(), 50);
      // Without the abort this would wait ten minutes (the test's own timeout fails it first).
      const e = await waiting.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(LockHeldError);
      expect((e as LockHeldError).holder.command).toBe('the holder');
      await expect(FileLock.acquire(path, 'a', { waitMs: 600_000, signal: AbortSignal.abort() })).rejects.toThrow(LockHeldError);
    } finally {
      holder.release();
    }
    // Free again: taken at once.
    FileLock.tryAcquire(path, 'a').release();
  });
});
