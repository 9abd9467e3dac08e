// Owner-only modes for secret files: a file or directory others can read is tightened; when chmod itself is
// refused (not the owner, an immutable file), the error names the path, its mode and the command to run.

import { chmodSync as realChmod, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

// chmod fails for the paths a test names: what a file owned by someone else, or immutable, does to us.
const refuse = new Set<string>();
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    chmodSync: (path: string, mode: number) => {
      if (refuse.has(String(path))) throw Object.assign(new Error(`EPERM: operation not permitted, chmod '${path}'`), { code: 'EPERM' });
      return fs.chmodSync(path, mode);
    },
  };
});

const { InsecurePermissionsError, openPrivateFile, tightenMode } = await import('./files.js');

const root = mkdtempSync(join(tmpdir(), 'eticket-files-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const mode = (p: string): number => statSync(p).mode & 0o777;

describe('private file modes', () => {
  it('tightens a file to 0600 and a directory to 0700, and leaves owner-only ones and missing paths alone', () => {
    const dir = join(root, 'd');
    mkdirSync(dir, { mode: 0o755 });
    realChmod(dir, 0o755);
    const file = join(dir, 'f');
    writeFileSync(file, 'x', { mode: 0o644 });
    realChmod(file, 0o644);
    expect(tightenMode(dir)).toBe(true);
    expect(tightenMode(file)).toBe(true);
    expect([mode(dir), mode(file)]).toEqual([0o700, 0o600]);
    expect(tightenMode(file)).toBe(false);
    expect(tightenMode(join(dir, 'missing'))).toBe(false);
  });

  it('refuses, with the chmod to run, a secret file whose mode cannot be changed', () => {
    const file = join(root, 'theirs');
    writeFileSync(file, 'x');
    realChmod(file, 0o640);
    refuse.add(file);
    try {
      let error: unknown;
      try {
        tightenMode(file);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InsecurePermissionsError);
      expect((error as Error).message).toBe(
        `${file} holds secrets but other users can access it (mode 0640), and its mode cannot be changed (EPERM: operation not permitted, chmod '${file}'): as its owner, run \`chmod 0600 ${file}\``,
      );
    } finally {
      refuse.delete(file);
    }
  });

  it('openPrivateFile creates 0600 and makes an existing 0644 file 0600 before anything is written', () => {
    const file = join(root, 'dump');
    writeFileSync(file, 'old secret');
    realChmod(file, 0o644);
    const fd = openPrivateFile(file);
    try {
      expect(mode(file)).toBe(0o600);
      expect(statSync(file).size).toBe(0);
      writeSync(fd, 'new');
    } finally {
      closeSync(fd);
    }
    const fresh = join(root, 'fresh');
    closeSync(openPrivateFile(fresh, 'wx'));
    expect(mode(fresh)).toBe(0o600);
  });
});
