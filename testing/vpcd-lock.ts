// A cross-process lock on vpcd's two readers, so test files and the PC/SC benchmark that put cards into
// them take turns: one card per port, and vitest runs files in parallel.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK = join(tmpdir(), 'eticket-vpcd.lock');

function lockHolderAlive(): boolean {
  try {
    const pid = Number(readFileSync(LOCK, 'utf8'));
    if (!pid) return false;
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive but not ours to signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take the vpcd readers for this process (test file or benchmark); returns the release function. The wait is long:
 * on a loaded machine another file's PC/SC tests (the vectors through vpcd) may hold the readers for minutes.
 */
export async function lockVpcd(timeoutMs = 840_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(LOCK, 'utf8') === String(process.pid)) unlinkSync(LOCK);
        } catch {
          // Already gone.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (!lockHolderAlive()) {
        try {
          unlinkSync(LOCK);
        } catch {
          // Someone else cleared it first.
        }
        continue;
      }
      if (Date.now() > deadline) throw new Error(`vpcd readers still locked by another test process after ${timeoutMs} ms (${LOCK})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
