// An empty PGlite data directory (initdb only, ~10 s), made once per machine under build/ and copied by every
// test and benchmark that needs a fresh embedded store (test/global-setup.ts sets ETICKET_PGLITE_TEMPLATE to it).

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileLock } from '../sdk/file-lock.js';

// The repository root, whether this runs from source (testing/) or compiled (dist/testing/, the benchmark).
const UP = fileURLToPath(new URL('../', import.meta.url));
const ROOT = basename(UP) === 'dist' ? dirname(UP) : UP;

export async function pglitePrepareTemplate(): Promise<string> {
  const { PGlite } = await import('@electric-sql/pglite');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8')) as { version: string };
  const dir = join(ROOT, 'build', `pglite-template-${pkg.version}`);
  if (existsSync(join(dir, 'PG_VERSION'))) return dir;
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  const lock = await FileLock.acquire(`${dir}.lock`, 'the PGlite test template', { waitMs: 120_000 });
  try {
    if (!existsSync(join(dir, 'PG_VERSION'))) {
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      const db = new PGlite(tmp);
      await db.waitReady;
      await db.close();
      renameSync(tmp, dir);
    }
  } finally {
    lock.release();
  }
  return dir;
}

