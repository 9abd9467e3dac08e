// Test helper: the bytes of a table as they lie in the database's files (main fork and TOAST, every 1 GiB
// segment), read by the server itself (pg_read_binary_file, superuser) after a CHECKPOINT, on both engines.
// What a thief of the data directory would read, as opposed to what SQL shows.

import type { Database } from '../../backoffice/store/database.js';

export interface RelationFiles {
  paths: string[];
  bytes: Buffer;
}

async function readAll(db: Database, path: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let segment = 0; ; segment++) {
    const p = segment === 0 ? path : `${path}.${segment}`;
    const b = await readFile(db, p);
    if (!b) break;
    out.push(b);
  }
  return out;
}

/** A file of the data directory by its path, or undefined when it does not exist. */
async function readFile(db: Database, path: string): Promise<Buffer | undefined> {
  const size = (await db.query<{ size: number | null }>('SELECT (pg_stat_file($1, true)).size AS size', [path])).rows[0]?.size;
  if (size === null || size === undefined) return undefined;
  if (Number(size) === 0) return Buffer.alloc(0);
  const r = await db.query<{ b: Uint8Array | null }>('SELECT pg_read_binary_file($1, 0, $2, true) AS b', [path, Number(size)]);
  return r.rows[0]?.b ? Buffer.from(r.rows[0].b) : undefined;
}

/** Flush everything to disk, then read the table's files (and its TOAST table's). */
export async function relationFiles(db: Database, table: string): Promise<RelationFiles> {
  await db.exec('CHECKPOINT');
  const r = await db.query<{ main: string; toast: string | null }>(
    `SELECT pg_relation_filepath(c.oid) AS main, CASE WHEN c.reltoastrelid <> 0 THEN pg_relation_filepath(c.reltoastrelid) END AS toast FROM pg_class c WHERE c.oid = $1::regclass`,
    [table],
  );
  const paths = [r.rows[0].main, r.rows[0].toast].filter((p): p is string => Boolean(p));
  const parts: Buffer[] = [];
  for (const p of paths) parts.push(...(await readAll(db, p)));
  return { paths, bytes: Buffer.concat(parts) };
}

/** Is a file of the data directory still there with bytes in it? */
export async function fileHasBytes(db: Database, path: string): Promise<boolean> {
  return ((await readFile(db, path))?.length ?? 0) > 0;
}
