// Exclusive locks between processes on one file (a card image, an embedded store): a lock file beside it
// naming the holder (PID, process start time, what it runs), created atomically, taken over when stale.

import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { EticketError } from './errors.js';

/** Another live process holds the lock; `holder` says who. */
export class LockHeldError extends EticketError {
  constructor(readonly resource: string, readonly holder: LockOwner) {
    super(`${resource} is in use by process ${holder.pid}${holder.command ? ` (${holder.command})` : ''} since ${holder.since}`);
  }
}

export interface LockOwner {
  pid: number;
  /** Start time of the process (Linux: clock ticks since boot, /proc/<pid>/stat field 22): a reused PID does not match. */
  start?: string;
  /** What the holder runs, for the message the next process reads. */
  command?: string;
  since: string;
  /** Unique per lock file: tells this lock from a later one at the same path. */
  nonce: string;
}

function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Is the process that wrote `owner` still running (the same process, not a reused PID)? */
export function ownerAlive(owner: LockOwner): boolean {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
  }
  const start = processStart(owner.pid);
  return owner.start === undefined || start === undefined || start === owner.start;
}

function readOwner(path: string): LockOwner | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    if (typeof o.pid === 'number' && typeof o.nonce === 'string') return o;
  } catch {
    // fall through: unreadable content
  }
  // A lock file is written whole before it appears (link), so garbage means a damaged disk or a person.
  return { pid: -1, since: 'unknown', nonce: `unreadable:${text.length}:${statSync(path).mtimeMs}` };
}

/** Create `path` with `content`, atomically: it appears whole or not at all; false when it exists. */
function createExclusive(path: string, content: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path); // link(2) fails with EEXIST instead of replacing: the atomic test-and-set
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

const held = new Map<string, FileLock>();
let exitHookInstalled = false;

/**
 * An exclusive lock held by this process until release() (or its exit). A lock left by a process that
 * died (kill -9, power loss) is taken over. The takeover itself runs under a second lock file (`.takeover`),
 * so two processes that both find the same stale lock cannot both remove it and both believe they hold it:
 * the one inside the takeover re-reads the lock and removes it only if it is still the stale one it saw.
 */
export class FileLock {
  private released = false;

  private constructor(readonly path: string, readonly owner: LockOwner) {}

  /**
   * Take the lock `path` for `resource` (named in messages). Throws LockHeldError when a live process holds
   * it, after waiting up to `waitMs` for it to be released; at once when `signal` aborts the wait (the caller no
   * longer needs the lock: a command that failed meanwhile).
   */
  static async acquire(path: string, resource: string, options: { waitMs?: number; command?: string; waitFor?: (holder: LockOwner) => boolean; signal?: AbortSignal } = {}): Promise<FileLock> {
    const deadline = Date.now() + (options.waitMs ?? 0);
    const signal = options.signal;
    for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
      try {
        return FileLock.tryAcquire(path, resource, options.command);
      } catch (e) {
        if (!(e instanceof LockHeldError) || Date.now() >= deadline || signal?.aborted) throw e;
        // A holder that will not let go soon (a server) is reported at once instead of after the wait.
        if (options.waitFor && !options.waitFor(e.holder)) throw e;
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(done, Math.min(delay, Math.max(1, deadline - Date.now())));
        function done(): void {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          r();
        }
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** One attempt, synchronous: for callers that cannot wait (opening a card image). */
  static tryAcquire(path: string, resource: string, command = process.argv.slice(2).join(' ')): FileLock {
    if (held.has(path)) throw new LockHeldError(resource, held.get(path)!.owner);
    const owner: LockOwner = { pid: process.pid, start: processStart(process.pid), command: command.slice(0, 200), since: new Date().toISOString(), nonce: randomBytes(12).toString('hex') };
    for (let attempt = 0; attempt < 5; attempt++) {
      if (createExclusive(path, JSON.stringify(owner) + '\n')) {
        const lock = new FileLock(path, owner);
        held.set(path, lock);
        installExitHook();
        return lock;
      }
      const current = readOwner(path);
      if (!current) continue; // released between our attempt and the read: try again
      if (ownerAlive(current)) throw new LockHeldError(resource, current);
      takeOver(path, current);
    }
    const current = readOwner(path);
    throw new LockHeldError(resource, current ?? { pid: -1, since: 'unknown', nonce: '' });
  }

  get isHeld(): boolean {
    return !this.released;
  }

  /** Release the lock (only if the file is still ours: never remove another process's lock). */
  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this.path);
    const current = readOwner(this.path);
    if (current?.nonce === this.owner.nonce) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }
}

/** Remove the stale lock `stale` at `path`, under the takeover lock; no-op if it changed meanwhile. */
function takeOver(path: string, stale: LockOwner): void {
  const guard = `${path}.takeover`;
  const me: LockOwner = { pid: process.pid, start: processStart(process.pid), since: new Date().toISOString(), nonce: randomBytes(12).toString('hex') };
  if (!createExclusive(guard, JSON.stringify(me))) {
    const g = readOwner(guard);
    // A takeover holder lives for microseconds; one that died inside it leaves the guard behind. Move a dead
    // guard aside under a unique name and check that what moved is the dead one (else put it back).
    if (g && !ownerAlive(g)) {
      const aside = `${guard}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
      try {
        renameSync(guard, aside);
        const moved = readOwner(aside);
        if (moved?.nonce !== g.nonce) {
          try {
            linkSync(aside, guard);
          } catch {
            // a third process made a new guard: it runs its own takeover, ours is simply skipped
          }
        }
        unlinkSync(aside);
      } catch {
        // someone else moved it first
      }
    }
    return; // the caller retries from the top
  }
  try {
    const current = readOwner(path);
    if (current && current.nonce === stale.nonce) unlinkSync(path);
  } finally {
    const g = readOwner(guard);
    if (g?.nonce === me.nonce) unlinkSync(guard);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Normal exits release their locks; a killed process leaves a stale lock that the next one takes over.
  process.on('exit', () => {
    for (const lock of [...held.values()]) lock.release();
  });
}
