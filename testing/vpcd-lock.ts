// A cross-process lock on vpcd's two readers, so test files and the PC/SC benchmark that put cards into
// them take turns: one card per port, and vitest runs files in parallel.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK = join(tmpdir(), 'eticket-vpcd.lock');

/** vpcd's readers, one per port: 35963 is "Virtual PCD 00 00", 35964 "Virtual PCD 00 01". */
export const VPCD_READERS: Readonly<Record<number, string>> = { 35963: 'Virtual PCD 00 00', 35964: 'Virtual PCD 00 01' };

/** How long pcscd may take to see a card leave: one 400 ms poll, many on a loaded machine. */
const REMOVAL_WAIT_MS = 10_000;

/**
 * Take a card process's card out and wait until pcscd reports the reader empty. The next card put into that port is
 * then a new insertion to pcscd: one that connects before pcscd has seen the last one leave is taken for it (same
 * handle, the old ATR) and its first exchange fails with SCardTransmit 0x80100016.
 */
export async function pullCard(card: { stop(): Promise<unknown>; kill(): Promise<unknown>; readonly port: number } | undefined, how: 'stop' | 'kill' = 'stop'): Promise<void> {
  if (!card) return;
  await (how === 'kill' ? card.kill() : card.stop());
  const reader = VPCD_READERS[card.port];
  if (!reader) return;
  const { waitForRemoval } = await import('../host/transport/pcsc.js');
  await waitForRemoval(reader, { timeoutMs: REMOVAL_WAIT_MS });
}

/** Until pcscd reports both vpcd readers empty: whoever held the lock before took its cards out. */
async function readersEmpty(): Promise<void> {
  const { waitForRemoval } = await import('../host/transport/pcsc.js');
  try {
    await Promise.all(Object.values(VPCD_READERS).map((reader) => waitForRemoval(reader, { timeoutMs: REMOVAL_WAIT_MS })));
  } catch (error) {
    throw new Error(`vpcd lock taken, but a card is still in a vpcd reader (a card process outside the lock?): ${(error as Error).message}`);
  }
}

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
 * Take the vpcd readers for this process (test file or benchmark); returns the release function once pcscd reports
 * both readers empty. The wait is long:
 * on a loaded machine another file's PC/SC tests (the vectors through vpcd) may hold the readers for minutes.
 */
export async function lockVpcd(timeoutMs = 840_000): Promise<() => void> {
  const release = await takeLock(timeoutMs);
  try {
    await readersEmpty();
  } catch (error) {
    release();
    throw error;
  }
  return release;
}

async function takeLock(timeoutMs: number): Promise<() => void> {
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
