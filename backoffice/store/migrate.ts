// Schema migrations: plain numbered SQL files in backoffice/migrations (NNNN_name.sql), applied in order,
// each in its own transaction, recorded with a checksum in eticket_migrations (graphile-worker style).

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EticketError } from '../../sdk/errors.js';
import type { Database } from './database.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));

/** The database and the migration files disagree: an applied file was edited, or the store is newer than this code. */
export class MigrationError extends EticketError {}

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) continue;
    const sql = readFileSync(`${dir}/${file}`, 'utf8');
    out.push({ version: Number(m[1]), name: m[2], sql, checksum: createHash('sha256').update(sql).digest('hex').slice(0, 16) });
  }
  // Versions are unique and increasing, not necessarily contiguous: branches reserve numbers and land in any
  // order, and a database applies whichever of them it has not applied yet (each one is recorded by version).
  out.forEach((m, i) => {
    if (m.version < 1 || (i > 0 && m.version === out[i - 1].version)) throw new MigrationError(`migration files must have distinct numbers from 0001: ${m.version} is given twice or is 0`);
  });
  return out;
}

// Any fixed number: every process that migrates this database takes the same advisory lock.
const LOCK_KEY = 0x45544b54; // "ETKT"

/**
 * Every migration file applied with its checksum, and none the files do not know: the common case at every start
 * of a command, told by one read without the lock and the transaction per file (about 0.15 s of a short command's
 * start on the embedded store). Anything else (no table yet, a file to apply, a mismatch) takes the locked path,
 * which applies or reports it.
 */
async function upToDate(db: Database, migrations: Migration[]): Promise<boolean> {
  const present = (await db.query<{ present: boolean }>("SELECT to_regclass('eticket_migrations') IS NOT NULL AS present")).rows[0]?.present;
  if (!present) return false;
  const rows = (await db.query<{ version: number; checksum: string }>('SELECT version, checksum FROM eticket_migrations')).rows;
  if (rows.length !== migrations.length) return false;
  const applied = new Map(rows.map((r) => [Number(r.version), r.checksum]));
  return migrations.every((m) => applied.get(m.version) === m.checksum);
}

/**
 * Bring the schema up to date; returns the versions applied now. Safe with several processes at once on a
 * server: each migration runs under a transaction-scoped advisory lock and re-checks what is applied.
 */
export async function migrate(db: Database, migrations = loadMigrations()): Promise<number[]> {
  if (await upToDate(db, migrations)) return [];
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS eticket_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const rows = (await tx.query<{ checksum: string }>('SELECT checksum FROM eticket_migrations WHERE version = $1', [m.version])).rows;
      if (rows.length) {
        if (rows[0].checksum !== m.checksum) throw new MigrationError(`migration ${m.version} (${m.name}) was applied with checksum ${rows[0].checksum}, the file now has ${m.checksum}: migration files must never change once applied; add a new one`);
        return false;
      }
      await tx.exec(m.sql);
      await tx.query('INSERT INTO eticket_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  const known = new Set(migrations.map((m) => m.version));
  const unknown = (await db.query<{ version: number }>('SELECT version FROM eticket_migrations ORDER BY version')).rows.map((r) => Number(r.version)).filter((v) => !known.has(v));
  if (unknown.length) throw new MigrationError(`the store has migration(s) ${unknown.join(', ')} that this eticket does not know: use a newer eticket`);
  return applied;
}
