// Where a CLI command's store database comes from (a PostgreSQL server, or the embedded PGlite store of the working
// directory), opened without the back office's modules: the issue command's thread boots PGlite while they load.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import { openPglite, openPostgres, type Database, type PgliteAssets } from '../../backoffice/store/database.js';
import { globals, UsageError } from './context.js';

/** How a command opens the store, from its global options (store.ts storeSettings), without commander. */
export interface StoreSettings {
  /** postgres://… ; undefined: the embedded store. */
  url?: string;
  /** --json: nothing but JSON on stdout, no notes on stderr. */
  json: boolean;
  /** Seconds to wait for another process holding the embedded store. */
  waitSeconds: number;
  /** What this process is doing, for the message another process reads while we hold the embedded store. */
  command: string;
}

export function databaseUrl(cmd: Command): string | undefined {
  const g = globals(cmd) as { database?: string };
  return g.database ?? (process.env.ETICKET_DATABASE_URL || undefined);
}

function waitSeconds(cmd: Command): number {
  const w = (globals(cmd) as { wait?: string }).wait;
  if (w === undefined) return 30;
  if (!/^\d+(\.\d+)?$/.test(w)) throw new UsageError('--wait takes seconds');
  return Number(w);
}

export function storeSettings(cmd: Command): StoreSettings {
  return { url: databaseUrl(cmd), json: Boolean(globals(cmd).json), waitSeconds: waitSeconds(cmd), command: `eticket ${process.argv.slice(2).join(' ')}`.slice(0, 200) };
}

/** The embedded store's buffer pool for a command that runs for seconds, not days. */
const SHORT_COMMAND_SHARED_BUFFERS = '16MB';

/**
 * Open the database of `dir`'s store (not migrated: Store.over does that): the server at `settings.url`, else the
 * embedded one, created on first use. A short command's embedded store starts with a small buffer pool
 * (database.ts sharedBuffers); a long-running one (`serve`) keeps the data directory's.
 */
export function openStoreDatabase(settings: StoreSettings, dir: string, options: { longRunning?: boolean; assets?: Promise<PgliteAssets>; signal?: AbortSignal } = {}): Promise<Database> {
  if (settings.url) return openPostgres(settings.url);
  if (!existsSync(join(dir, 'store', 'PG_VERSION')) && !settings.json && !process.env.ETICKET_PGLITE_TEMPLATE) {
    console.error(`eticket: creating the embedded store in ${join(dir, 'store')} (the first time takes 10-20 s)`);
  }
  const sharedBuffers = options.longRunning ? undefined : SHORT_COMMAND_SHARED_BUFFERS;
  if (!options.longRunning) baselineWasmOnly();
  return openPglite(dir, { create: true, waitMs: settings.waitSeconds * 1000, command: settings.command, sharedBuffers, assets: options.assets, signal: options.signal });
}

/**
 * A short command's WebAssembly (PGlite's 9 MB of PostgreSQL) runs as V8's baseline code (Liftoff) and is never
 * recompiled by the optimising tier. V8 otherwise recompiles the functions PostgreSQL's start-up makes hot on its
 * background threads: about 1.7 s of CPU in a 1,000-row `eticket issue`, on the two cores the batch itself needs,
 * for code that a command of seconds hardly runs (measured: the command 3.8 → 3.1 s, the store's thread's CPU
 * unchanged; docs/performance.md). V8's flags are the process's: set before the module is compiled. `eticket serve`
 * (long-running) keeps the optimising tier.
 */
export function baselineWasmOnly(): void {
  setFlagsFromString('--liftoff-only');
}
