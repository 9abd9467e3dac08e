// The denylist in the store (docs/gates.md "Denylists"): cards go on it (an anomaly, or an operator's decision)
// and come off it in numbered versions; any version's list, and the delta between two, follow from the rows.
// Gates fetch signed documents: a delta from the version they hold, or the full list.

import { hex } from '../sdk/bytes.js';
import { InvalidInputError } from '../sdk/errors.js';
import type { Signer } from '../sdk/crypto/suite.js';
import { signDenylist, type DenylistDocument } from '../sdk/roles/denylist.js';
import type { Queryable } from './store/database.js';
import type { AuthorityKeyRecord, Store } from './store/store.js';

const SERIAL = /^[0-9A-F]{16}$/;

export interface DenylistEntry {
  card: string;
  reason: string;
  anomalyId?: number;
  addedVersion: number;
}

/** The operator's denylist version now (0: nothing ever listed). */
export async function denylistVersion(q: Queryable, operator: string): Promise<number> {
  return Number((await q.query<{ version: number }>('SELECT version FROM denylist_state WHERE operator = $1', [operator])).rows[0]?.version ?? 0);
}

/** Cards on the list at version `v`. */
export async function denylistAt(q: Queryable, operator: string, v: number): Promise<string[]> {
  const r = await q.query<{ card_serial: string }>('SELECT card_serial FROM denylist WHERE operator = $1 AND added_version <= $2 AND (removed_version IS NULL OR removed_version > $2) ORDER BY card_serial', [operator, v]);
  return r.rows.map((x) => x.card_serial);
}

export async function denylistEntries(q: Queryable, operator: string): Promise<DenylistEntry[]> {
  const r = await q.query<{ card_serial: string; reason: string; anomaly_id: number | null; added_version: number }>('SELECT card_serial, reason, anomaly_id, added_version FROM denylist WHERE operator = $1 AND removed_version IS NULL ORDER BY added_version, card_serial', [operator]);
  return r.rows.map((x) => ({ card: x.card_serial, reason: x.reason, anomalyId: x.anomaly_id === null ? undefined : Number(x.anomaly_id), addedVersion: Number(x.added_version) }));
}

/** A new version number, taken under the operator's row lock (one at a time across every service process). */
async function nextVersion(q: Queryable, operator: string, note: string): Promise<number> {
  const v = Number((await q.query<{ version: number }>('INSERT INTO denylist_state (operator, version) VALUES ($1, 1) ON CONFLICT (operator) DO UPDATE SET version = denylist_state.version + 1 RETURNING version', [operator])).rows[0].version);
  await q.query('INSERT INTO denylist_versions (operator, version, note) VALUES ($1, $2, $3)', [operator, v, note.slice(0, 200)]);
  return v;
}

/**
 * Put cards on the list (those not on it already) in one new version, inside the caller's transaction.
 * Returns the new version, or undefined when every card was listed already (no new version then).
 */
export async function denylistAdd(q: Queryable, operator: string, entries: { card: string; reason: string; anomalyId?: number }[], note: string): Promise<{ version?: number; added: string[] }> {
  for (const e of entries) if (!SERIAL.test(e.card)) throw new InvalidInputError(`not a card serial (16 hex digits): ${e.card}`);
  const unique = [...new Map(entries.map((e) => [e.card, e])).values()];
  if (!unique.length) return { added: [] };
  const listed = new Set((await q.query<{ card_serial: string }>('SELECT card_serial FROM denylist WHERE operator = $1 AND removed_version IS NULL AND card_serial = ANY($2::text[])', [operator, unique.map((e) => e.card)])).rows.map((x) => x.card_serial));
  const fresh = unique.filter((e) => !listed.has(e.card));
  if (!fresh.length) return { added: [] };
  const version = await nextVersion(q, operator, note);
  await q.query(
    `INSERT INTO denylist (operator, card_serial, reason, anomaly_id, added_version) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[])
     ON CONFLICT (operator, card_serial) WHERE removed_version IS NULL DO NOTHING`,
    [operator, fresh.map((e) => e.card), fresh.map((e) => e.reason.slice(0, 300)), fresh.map((e) => e.anomalyId ?? null), fresh.map(() => version)],
  );
  return { version, added: fresh.map((e) => e.card) };
}

/** Take cards off the list in one new version (an operator's decision after looking into it). */
export async function denylistRemove(q: Queryable, operator: string, cards: string[], note: string): Promise<{ version?: number; removed: string[] }> {
  for (const c of cards) if (!SERIAL.test(c)) throw new InvalidInputError(`not a card serial (16 hex digits): ${c}`);
  const listed = (await q.query<{ card_serial: string }>('SELECT card_serial FROM denylist WHERE operator = $1 AND removed_version IS NULL AND card_serial = ANY($2::text[])', [operator, cards])).rows.map((x) => x.card_serial);
  if (!listed.length) return { removed: [] };
  const version = await nextVersion(q, operator, note);
  await q.query('UPDATE denylist SET removed_version = $3 WHERE operator = $1 AND removed_version IS NULL AND card_serial = ANY($2::text[])', [operator, listed, version]);
  return { version, removed: listed };
}

/** Signed denylist documents, cached per (base, version): a version never changes once made. */
export class DenylistPublisher {
  private readonly cache = new Map<string, DenylistDocument>();

  constructor(
    private readonly store: Store,
    private readonly operator: string,
    private readonly signer: () => Promise<{ record: AuthorityKeyRecord; signer: Signer }>,
    private readonly clock: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  /** The current version as a delta from `since` (when 0 < since <= current; empty when equal), else in full. */
  async document(since?: number): Promise<DenylistDocument> {
    const q = this.store.db;
    const version = await denylistVersion(q, this.operator);
    const delta = since !== undefined && since > 0 && since <= version;
    const key = delta ? `${since}:${version}` : `full:${version}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const { record, signer } = await this.signer();
    const certificate = record.role === 'signing' && record.certificate ? hex(record.certificate) : undefined;
    const now = await denylistAt(q, this.operator, version);
    let doc: DenylistDocument;
    if (delta) {
      const before = new Set(await denylistAt(q, this.operator, since));
      const after = new Set(now);
      doc = signDenylist(signer, { operator: this.operator, version, kind: 'delta', base: since, added: now.filter((c) => !before.has(c)), removed: [...before].filter((c) => !after.has(c)).sort(), time: this.clock(), certificate });
    } else {
      doc = signDenylist(signer, { operator: this.operator, version, kind: 'full', cards: now, time: this.clock(), certificate });
    }
    if (this.cache.size > 256) this.cache.clear();
    this.cache.set(key, doc);
    return doc;
  }
}
