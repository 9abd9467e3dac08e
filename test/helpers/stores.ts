// Test helper: fresh stores on both engines. PGlite from a template data directory (copied, so no initdb per
// test); PostgreSQL as a new database on the server at ETICKET_TEST_DATABASE_URL (skipped with a printed
// reason when there is none, except under CI, where .ci/run starts one and its absence is a failure).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pglitePrepareTemplate } from '../../testing/pglite-template.js';
import { Store } from '../../backoffice/store/store.js';

/** The template's path (made by test/global-setup.ts; made here if a file runs without it). */
export async function pgliteTemplate(): Promise<string> {
  const t = process.env.ETICKET_PGLITE_TEMPLATE;
  if (t && existsSync(join(t, 'PG_VERSION'))) return t;
  process.env.ETICKET_PGLITE_TEMPLATE = await pglitePrepareTemplate();
  return process.env.ETICKET_PGLITE_TEMPLATE;
}

export const postgresUrl = process.env.ETICKET_TEST_DATABASE_URL;

/** Why PostgreSQL tests skip here, or undefined when they run. Under CI a missing server fails instead. */
export const postgresSkipReason: string | undefined = (() => {
  if (postgresUrl) return undefined;
  if (process.env.CI) throw new Error('CI runs without ETICKET_TEST_DATABASE_URL: .ci/run must start PostgreSQL (tools/pg-start.sh)');
  const reason = 'PostgreSQL tests skipped: ETICKET_TEST_DATABASE_URL is not set (tools/pg-start.sh starts a server; .ci/run does it)';
  console.warn(reason);
  return reason;
})();

/** A new empty database on the test server; returns its URL and a function that drops it. */
export async function freshPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!postgresUrl) throw new Error('no ETICKET_TEST_DATABASE_URL');
  const pg = (await import('pg')).default;
  const name = `eticket_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(postgresUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const a = new pg.Client({ connectionString: postgresUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** A fresh working-directory-like folder. */
export function tempDir(prefix = 'eticket-store-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface EngineCase {
  engine: 'pglite' | 'postgres';
  skip?: string;
  /** A fresh, migrated store, and how to throw it away. */
  open(): Promise<{ store: Store; dir: string; url?: string; dispose: () => Promise<void> }>;
}

export const ENGINES: EngineCase[] = [
  {
    engine: 'pglite',
    async open() {
      await pgliteTemplate();
      const dir = tempDir();
      const store = await Store.open(dir, { create: true });
      return {
        store,
        dir,
        dispose: async () => {
          await store.close().catch(() => undefined);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    engine: 'postgres',
    skip: postgresSkipReason,
    async open() {
      const { url, drop } = await freshPostgresDatabase();
      const dir = tempDir();
      const store = await Store.open(dir, { url });
      return {
        store,
        dir,
        url,
        dispose: async () => {
          await store.close().catch(() => undefined);
          await drop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];
