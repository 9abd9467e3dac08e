// The two database engines behind one interface: PGlite (PostgreSQL in WASM) embedded in a working directory,
// and a PostgreSQL server through `pg`. Same SQL on both; transactions with retry on serialization failures.

import { chmodSync, cpSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Pool, PoolClient } from 'pg';
import { EticketError } from '../../sdk/errors.js';
import { FileLock } from '../../sdk/file-lock.js';

export type Row = Record<string, unknown>;

export interface QueryResult<T = Row> {
  rows: T[];
  rowCount: number;
}

/** What a statement runs on: the database, or one open transaction. */
export interface Queryable {
  query<T = Row>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** Several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface TransactionOptions {
  /** SERIALIZABLE, retried on serialization failures and deadlocks (40001, 40P01). */
  serializable?: boolean;
}

export interface Database extends Queryable {
  readonly engine: 'pglite' | 'postgres';
  /** Where the data is, for messages: a directory or a URL without its password. */
  readonly description: string;
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}

/**
 * Planner statistics for the tables that grew: each one at least twice the pages it had when last analyzed (and 8
 * pages, 64 KiB, at least), analyzed now. PostgreSQL's autovacuum does this on a server; PGlite runs no background
 * workers, so its tables keep the statistics of their creation (none) and every plan assumes they are tiny: with
 * 16,000 TIDs, looking up a batch chunk's request keys scanned them all (71 ms, 0.2 ms once analyzed). The doubling
 * keeps the cost of the analyses in proportion to the growth. A table's size is the database's (pg_relation_size),
 * or, given `dataDir` of a store just opened (its files written out at its last close), its file's size: asking
 * the database opens every table's file through PGlite's file system, 0.17-0.2 s of each command's start for
 * some 30 tables it mostly never touches. Returns the tables analyzed.
 */
export async function analyzeGrownTables(db: Queryable, dataDir?: string): Promise<string[]> {
  const rows = (
    await db.query<{ name: string; path: string; pages: number; block: number; size: string | number | null }>(
      `SELECT c.relname AS name, pg_relation_filepath(c.oid) AS path, c.relpages AS pages,
              current_setting('block_size')::int AS block, ${dataDir === undefined ? 'pg_relation_size(c.oid)' : 'NULL::bigint'} AS size
       FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace ORDER BY c.relname`,
    )
  ).rows;
  const size = (r: (typeof rows)[number]): number => (dataDir === undefined ? Number(r.size) : fileSize(join(dataDir, r.path)));
  const grown = rows.filter((r) => size(r) / r.block >= 2 * Math.max(r.pages, 0) + 8).map((r) => r.name);
  for (const name of grown) await db.exec(`ANALYZE "${name.replaceAll('"', '""')}"`);
  return grown;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0; // no file yet (an empty table): nothing to analyze
  }
}

/** The database could not be opened or reached (bad URL, server down, damaged data directory). */
export class StoreUnavailableError extends EticketError {}

/** A statement failed in the database; `code` is PostgreSQL's SQLSTATE (23505 unique violation, ...). */
export class DatabaseError extends EticketError {
  constructor(message: string, readonly code: string | undefined, readonly constraint?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

function wrap(e: unknown): never {
  if (e instanceof EticketError) throw e;
  const err = e as { message?: string; code?: string; constraint?: string };
  throw new DatabaseError(err?.message ?? String(e), err?.code, err?.constraint, { cause: e });
}

const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 8;

async function backoff(attempt: number): Promise<void> {
  await new Promise((r) => setTimeout(r, Math.random() * 5 * 2 ** attempt));
}

// ---------------------------------------------------------------------------------------------- PGlite --

/** Where a working directory keeps its embedded database, and the lock that makes it one process's at a time. */
export function pgliteLayout(workDir: string): { dataDir: string; lockFile: string } {
  return { dataDir: join(workDir, 'store'), lockFile: join(workDir, 'store.lock') };
}

export interface PgliteOptions {
  /** How long to wait for another process to release the store (ms). */
  waitMs?: number;
  /** Create the data directory if absent (initdb, ~10 s); otherwise a missing store is an error. */
  create?: boolean;
  /** What this process is doing, for the message another process reads while we hold the lock. */
  command?: string;
  /**
   * shared_buffers for this process (e.g. "16MB"), over the data directory's (initdb's 128 MB). PGlite sets the
   * whole pool up at every start: for a short command that is 0.3-0.5 s of CPU of its start-up, while the
   * operating system caches the store's files anyway. Long-running processes (serve) keep the larger pool.
   */
  sharedBuffers?: string;
  /**
   * PGlite's files made ready ahead (pgliteAssets), e.g. by a thread started before the command knew its store;
   * undefined: made now; a part missing: PGlite reads and compiles its own.
   */
  assets?: Promise<PgliteAssets>;
  /** Stops the wait for another process's lock (waitMs) at once, with its LockHeldError: the caller gave up. */
  signal?: AbortSignal;
}

/** PGlite's WebAssembly compiled, and its file-system bundle (share/, 6 MB) being read. */
export interface PgliteAssets {
  wasmModule?: WebAssembly.Module;
  /** What PGlite asks of its `fsBundle` option (a Blob): the bytes, from a read started earlier. */
  fsBundle?: Pick<Blob, 'arrayBuffer'>;
}

/**
 * Start reading PGlite's two files now and compile its WebAssembly (9 MB of PostgreSQL) for an openPglite to come
 * (PgliteOptions.assets): what PGlite would read and compile from the same files, earlier (a thread started before
 * the command knew its store). The reads go through node's thread pool (a synchronous read of the 15 MB, its pages
 * faulted in on this thread, cost 50-60 ms of it here; a Blob of them as much again). A part that cannot be made is
 * left out: PGlite reads and compiles its own.
 */
export async function pgliteAssets(): Promise<PgliteAssets> {
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  } catch {
    return {};
  }
  const data = readFile(join(dir, 'pglite.data'));
  data.catch(() => undefined); // a failure is PGlite's to report when it asks for the bytes
  const wasmModule = await readFile(join(dir, 'pglite.wasm'))
    .then((b) => WebAssembly.compile(b))
    .catch(() => undefined);
  // PGlite's own reading hands over the file's whole ArrayBuffer the same way (getFsBundle).
  const fsBundle = { arrayBuffer: () => data.then((b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))) };
  return { wasmModule, fsBundle };
}

/**
 * PGlite in `workDir/store`. PGlite is one connection in one process and cannot be opened twice, so the
 * directory is locked (`store.lock`) for as long as it is open; another process waits up to `waitMs`, then
 * gets LockHeldError naming the holder. For several processes, use a PostgreSQL server.
 */
export async function openPglite(workDir: string, options: PgliteOptions = {}): Promise<Database> {
  const { dataDir, lockFile } = pgliteLayout(workDir);
  const lock = await FileLock.acquire(lockFile, `the embedded store of ${workDir}`, {
    waitMs: options.waitMs ?? 0,
    command: options.command,
    // `eticket serve` holds the store until it is stopped: waiting for it would only delay the same answer.
    waitFor: (holder) => !/(^|\s)serve(\s|$)/.test(holder.command ?? ''),
    signal: options.signal,
  });
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      if (!options.create) throw new StoreUnavailableError(`${workDir} has no store yet (${dataDir}): run \`eticket init --migrate\``);
      const template = process.env.ETICKET_PGLITE_TEMPLATE;
      // A fresh data directory costs an initdb (~10 s); tests copy one made earlier by the same code instead.
      if (template && existsSync(join(template, 'PG_VERSION'))) cpSync(template, dataDir, { recursive: true });
      else mkdirSync(dirname(dataDir), { recursive: true });
    }
    const { PGlite } = await import('@electric-sql/pglite');
    let db: InstanceType<typeof PGlite>;
    try {
      const settings = options.sharedBuffers ? ['-c', `shared_buffers=${options.sharedBuffers}`] : [];
      const assets = (await (options.assets ?? pgliteAssets()).catch(() => undefined)) ?? {};
      db = new PGlite(dataDir, {
        startParams: [...PGlite.defaultStartParams, ...settings],
        serializers: { [BYTEA_OID]: byteaToText },
        parsers: { [BYTEA_OID]: byteaFromText },
        ...(assets.wasmModule ? { pgliteWasmModule: assets.wasmModule } : {}),
        ...(assets.fsBundle ? { fsBundle: assets.fsBundle as Blob } : {}),
      });
      await db.waitReady;
    } catch (e) {
      throw new StoreUnavailableError(`cannot open the embedded store ${dataDir}: ${(e as Error).message}`, { cause: e });
    }
    // Tickets name passengers: the data directory is the owner's only, as PostgreSQL demands of its own.
    chmodSync(dataDir, 0o700);
    const opened = new PgliteDatabase(db, dataDir, lock);
    try {
      await analyzeGrownTables(opened, dataDir);
    } catch (e) {
      await opened.close().catch(() => undefined);
      throw e;
    }
    return opened;
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** PostgreSQL's type OID of bytea (pg_type). */
const BYTEA_OID = 17;

/**
 * bytea to PostgreSQL's hex text form, natively. PGlite's own serializer formats byte by byte in JavaScript
 * (`Array.from(bytes).map(...)`): a 1,000-row batch chunk's tickets and bills (about 1.5 KB of bytea a row) spent
 * 6 % of the back office's CPU there. Arrays of bytea (a chunk's columns) use it for each element.
 */
function byteaToText(v: unknown): string {
  if (!(v instanceof Uint8Array)) throw new TypeError('bytea parameter is not a Uint8Array');
  return '\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

/** PostgreSQL's hex text form (bytea_output = hex, the default) to bytes, natively; a Uint8Array of its own. */
function byteaFromText(text: string): Uint8Array {
  if (!text.startsWith('\\x')) throw new TypeError(`bytea not in hex form: ${text.slice(0, 16)}`);
  return new Uint8Array(Buffer.from(text.slice(2), 'hex'));
}

type PGliteInstance = InstanceType<typeof import('@electric-sql/pglite').PGlite>;
type PGliteTx = Parameters<Parameters<PGliteInstance['transaction']>[0]>[0];

class PgliteQueryable implements Queryable {
  constructor(protected readonly q: PGliteInstance | PGliteTx) {}

  async query<T = Row>(sql: string, params: unknown[] = []): Promise<QueryResult<T>> {
    try {
      const r = await this.q.query<T>(sql, params);
      // PGlite counts affected rows for INSERT/UPDATE/DELETE only (0 for a SELECT), pg counts both.
      return { rows: r.rows, rowCount: Math.max(r.rows.length, r.affectedRows ?? 0) };
    } catch (e) {
      wrap(e);
    }
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.q.exec(sql);
    } catch (e) {
      wrap(e);
    }
  }
}

class PgliteDatabase extends PgliteQueryable implements Database {
  readonly engine = 'pglite' as const;
  private closed = false;

  constructor(private readonly db: PGliteInstance, readonly description: string, private readonly lock: FileLock) {
    super(db);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    // One connection: PGlite runs transactions one after the other, so SERIALIZABLE never fails here;
    // it is still set, so the SQL is the one that runs on a server.
    try {
      return await this.db.transaction(async (tx) => {
        if (options.serializable) await tx.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
        return fn(new PgliteQueryable(tx));
      });
    } catch (e) {
      wrap(e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.db.close();
    } finally {
      this.lock.release();
    }
  }
}

// ------------------------------------------------------------------------------------------ PostgreSQL --

/** The URL as it may be printed: without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable database URL)';
  }
}

/** A PostgreSQL server at `url` (postgres://user:pass@host:port/db), through a pool of `pg` connections. */
export async function openPostgres(url: string, options: { poolSize?: number } = {}): Promise<Database> {
  if (!/^postgres(ql)?:\/\//.test(url)) throw new StoreUnavailableError(`not a PostgreSQL URL: ${redactUrl(url)} (postgres://user@host:port/database)`);
  const pg = (await import('pg')).default;
  // int8 and numeric as numbers: counts and sums stay far below 2^53.
  const types = { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 || oid === 1700 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) };
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, types: types as never, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => undefined); // an idle client losing its server: the next query reports it
  try {
    const c = await pool.connect();
    c.release();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new StoreUnavailableError(`cannot reach PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}`, { cause: e });
  }
  return new PostgresDatabase(pool, redactUrl(url));
}

type PgPool = Pool;
type PgClient = PoolClient;

class PgQueryable implements Queryable {
  constructor(protected readonly q: PgPool | PgClient) {}

  async query<T = Row>(sql: string, params: unknown[] = []): Promise<QueryResult<T>> {
    try {
      const r = await this.q.query(sql, params as unknown[]);
      return { rows: r.rows as T[], rowCount: r.rowCount ?? r.rows.length };
    } catch (e) {
      wrap(e);
    }
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.q.query(sql);
    } catch (e) {
      wrap(e);
    }
  }
}

class PostgresDatabase extends PgQueryable implements Database {
  readonly engine = 'postgres' as const;

  constructor(private readonly pool: PgPool, readonly description: string) {
    super(pool);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: PgClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        throw new StoreUnavailableError(`cannot reach PostgreSQL at ${this.description}: ${(e as Error).message}`, { cause: e });
      }
      let broken = false;
      try {
        await client.query(options.serializable ? 'BEGIN ISOLATION LEVEL SERIALIZABLE' : 'BEGIN');
        const result = await fn(new PgQueryable(client));
        await client.query('COMMIT');
        return result;
      } catch (e) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true; // the connection is gone: do not give it back to the pool
        }
        const code = (e as { code?: string }).code ?? (e instanceof DatabaseError ? e.code : undefined);
        if (code && RETRYABLE.has(code) && attempt < MAX_ATTEMPTS) {
          await backoff(attempt);
          continue;
        }
        wrap(e);
      } finally {
        client.release(broken);
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
