// Replace a file whole or not at all, durably: write a temporary file beside it, fsync it, rename it over
// the target, fsync the directory. Every state file (card images, configs, key files, ledgers) uses this one.

import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export interface DurableWriteOptions {
  /** File mode of the new file (e.g. 0o600 for private material); default 0o666 less the umask. */
  mode?: number;
}

/**
 * After a crash at any point, `path` holds either its old content or `data`, never a mix; once this returns,
 * the new content survives a power cut. Two writers never share a temporary file (pid and random suffix).
 */
export function writeFileDurably(path: string, data: Uint8Array | string, options: DurableWriteOptions = {}): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'wx', options.mode ?? 0o666);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
  fsyncDirectory(dirname(path));
}

/** writeFileDurably without blocking the event loop (the writes and fsyncs run in libuv's thread pool). */
export async function writeFileDurablyAsync(path: string, data: Uint8Array | string, options: DurableWriteOptions = {}): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', options.mode ?? 0o666);
  try {
    await fh.writeFile(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp);
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp);
    throw e;
  }
  const dir = await open(dirname(path), 'r').catch(() => undefined);
  if (dir) {
    try {
      await dir.sync();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw e;
    } finally {
      await dir.close();
    }
  }
}

/** A rename or a new file is durable once its directory is: fsync the directory entry (where the platform allows it). */
export function fsyncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return; // e.g. Windows cannot open a directory; its rename is as durable as it gets there
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    // Some filesystems refuse fsync on a directory (EINVAL, EISDIR): nothing more can be done there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw e;
  } finally {
    closeSync(fd);
  }
}
