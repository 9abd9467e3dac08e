// The store's real-name tables (migration 0005): real-name tickets and their encrypted holder records, terminal
// TOTP secrets and spent steps, the permission table, read limits, the access log, and the sweep's bookkeeping.
// Destruction deletes the record row (its data key with it); races are settled by row locks and unique keys.
// A TID issued again (withdrawn from a full card, migration 7) has a row per issuance (migration 8); the current
// issuance's row is the ticket's, an earlier one's only says when and why its record was destroyed.

import type { Database, Queryable } from './database.js';

export type DestroyReason = 'expired' | 'deleted' | 'cancelled' | 'used_up' | 'reads_exhausted';

export interface RealNameTicketRecord {
  operator: string;
  tid: string;
  /** The issuance of the TID this row belongs to (TicketRecord.issuance when it was written). */
  issuance: number;
  holderRef: Uint8Array;
  origin?: string;
  destination?: string;
  kind?: number;
  expiresAt: Date;
  readsMax: number;
  readsUsed: number;
  state: 'held' | 'destroyed';
  destroyedAt?: Date;
  destroyedReason?: DestroyReason;
}

/** A holder record as stored: sealed under its data key, the data key sealed under a master key. */
export interface HolderRecordRow {
  operator: string;
  tid: string;
  issuance: number;
  masterKeyId: string;
  wrappedKey: Uint8Array;
  sealed: Uint8Array;
}

export interface TerminalTotpRow {
  clientId: string;
  algorithm: 'SHA1' | 'SHA256' | 'SHA512';
  digits: number;
  period: number;
  masterKeyId: string;
  secretSealed: Uint8Array;
}

/** One row of the permission table: each given column must equal the ticket's (station: origin or destination). */
export interface PermissionGrant {
  grantId: number;
  clientId: string;
  operator?: string;
  station?: string;
  kind?: number;
  createdAt?: Date;
}

export interface AccessLogEntry {
  entryId?: number;
  at?: Date;
  clientId: string;
  operator?: string;
  tid?: string;
  outcome: 'read' | 'refused';
  reason: string;
  readsLeft?: number;
  /**
   * The issuance of the TID the entry is about: the one whose reference the request named (migration 9). Absent where
   * no issuance had it, where the request was refused before its ticket was looked up, and in older entries.
   */
  issuance?: number;
}

const u8 = (v: unknown): Uint8Array => (v instanceof Uint8Array ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(0));
const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);
const optNum = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const date = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));

function ticketRow(r: Record<string, unknown>): RealNameTicketRecord {
  return {
    operator: String(r.operator),
    tid: String(r.tid),
    issuance: Number(r.issuance),
    holderRef: u8(r.holder_ref),
    origin: opt(r.origin as string | null),
    destination: opt(r.destination as string | null),
    kind: optNum(r.kind),
    expiresAt: date(r.expires_at),
    readsMax: Number(r.reads_max),
    readsUsed: Number(r.reads_used),
    state: r.state as 'held' | 'destroyed',
    destroyedAt: r.destroyed_at ? date(r.destroyed_at) : undefined,
    destroyedReason: opt(r.destroyed_reason as DestroyReason | null),
  };
}

function grantRow(r: Record<string, unknown>): PermissionGrant {
  return { grantId: Number(r.grant_id), clientId: String(r.client_id), operator: opt(r.operator as string | null), station: opt(r.station as string | null), kind: optNum(r.kind), createdAt: r.created_at ? date(r.created_at) : undefined };
}

export class HolderStore {
  constructor(private readonly db: Database) {}

  // ------------------------------------------------------------------------------------------ issuance --

  /**
   * The real-name row and record of the ticket's current issuance (the tickets row written in this transaction).
   * Returns that issuance. A TID's earlier issuance keeps its own, destroyed row.
   */
  async insert(t: Omit<RealNameTicketRecord, 'issuance' | 'readsUsed' | 'state' | 'destroyedAt' | 'destroyedReason'>, record: Omit<HolderRecordRow, 'issuance'>, q: Queryable): Promise<number> {
    const r = await q.query<{ issuance: number }>(
      `INSERT INTO realname_tickets (operator, tid, issuance, holder_ref, origin, destination, kind, expires_at, reads_max)
       VALUES ($1, $2, (SELECT issuance FROM tickets WHERE operator = $1 AND tid = $2), $3, $4, $5, $6, $7, $8) RETURNING issuance`,
      [t.operator, t.tid, t.holderRef, t.origin ?? null, t.destination ?? null, t.kind ?? null, t.expiresAt, t.readsMax],
    );
    const issuance = Number(r.rows[0].issuance);
    await q.query(`INSERT INTO holder_records (operator, tid, issuance, master_key_id, wrapped_key, sealed) VALUES ($1, $2, $3, $4, $5, $6)`, [record.operator, record.tid, issuance, record.masterKeyId, record.wrappedKey, record.sealed]);
    return issuance;
  }

  /** The row of the ticket's current issuance; undefined when that issuance is not real-name. */
  async ticket(operator: string, tid: string, q: Queryable = this.db, lock = false): Promise<RealNameTicketRecord | undefined> {
    const r = (
      await q.query(
        `SELECT r.* FROM realname_tickets r JOIN tickets t ON t.operator = r.operator AND t.tid = r.tid AND t.issuance = r.issuance WHERE r.operator = $1 AND r.tid = $2${lock ? ' FOR UPDATE OF r' : ''}`,
        [operator, tid],
      )
    ).rows[0];
    return r ? ticketRow(r) : undefined;
  }

  /** The rows of every real-name issuance of the TID, the first first (the audit of what was destroyed, and why). */
  async issuances(operator: string, tid: string, q: Queryable = this.db): Promise<RealNameTicketRecord[]> {
    return (await q.query('SELECT * FROM realname_tickets WHERE operator = $1 AND tid = $2 ORDER BY issuance', [operator, tid])).rows.map(ticketRow);
  }

  /** The held record of the ticket's current issuance, if any. */
  async record(operator: string, tid: string, q: Queryable = this.db): Promise<HolderRecordRow | undefined> {
    const r = (await q.query('SELECT h.* FROM holder_records h JOIN tickets t ON t.operator = h.operator AND t.tid = h.tid AND t.issuance = h.issuance WHERE h.operator = $1 AND h.tid = $2', [operator, tid])).rows[0];
    return r ? recordRow(r) : undefined;
  }

  /** One more read of a held record, while reads are left; returns the reads used after it, or undefined. */
  async countRead(operator: string, tid: string, issuance: number, q: Queryable): Promise<number | undefined> {
    const r = await q.query<{ reads_used: number }>(
      `UPDATE realname_tickets SET reads_used = reads_used + 1 WHERE operator = $1 AND tid = $2 AND issuance = $3 AND state = 'held' AND reads_used < reads_max RETURNING reads_used`,
      [operator, tid, issuance],
    );
    return r.rows[0] ? Number(r.rows[0].reads_used) : undefined;
  }

  // --------------------------------------------------------------------------------------- destruction --

  /**
   * Destroy one ticket's holder record: its row (sealed record and data key) is deleted, the ticket row says
   * why and when. Returns false when there was nothing held (not real-name, or already destroyed). A TID holds at
   * most one record (realname_tickets_held): its current issuance's. With `issuance`, only that issuance's record.
   */
  async destroy(operator: string, tid: string, reason: DestroyReason, at: Date, q: Queryable, issuance?: number): Promise<boolean> {
    const t = await q.query<{ issuance: number }>(
      `UPDATE realname_tickets SET state = 'destroyed', destroyed_at = $4, destroyed_reason = $3 WHERE operator = $1 AND tid = $2 AND state = 'held' AND ($5::integer IS NULL OR issuance = $5) RETURNING issuance`,
      [operator, tid, reason, at, issuance ?? null],
    );
    if (t.rowCount !== 1) return false;
    await q.query('DELETE FROM holder_records WHERE operator = $1 AND tid = $2 AND issuance = $3', [operator, tid, t.rows[0].issuance]);
    await q.query('UPDATE realname_sweeps SET destructions = destructions + 1 WHERE id = 1');
    return true;
  }

  /** Destroy every record whose ticket has expired by `now`, in one transaction; returns the tickets. */
  async destroyExpired(now: Date): Promise<{ operator: string; tid: string }[]> {
    return this.db.transaction(async (tx) => {
      const r = await tx.query<{ operator: string; tid: string }>(
        `UPDATE realname_tickets SET state = 'destroyed', destroyed_at = $1, destroyed_reason = 'expired' WHERE state = 'held' AND expires_at <= $1 RETURNING operator, tid`,
        [now],
      );
      if (!r.rows.length) return [];
      await tx.query(`DELETE FROM holder_records h USING realname_tickets t WHERE h.operator = t.operator AND h.tid = t.tid AND h.issuance = t.issuance AND t.state = 'destroyed'`);
      await tx.query('UPDATE realname_sweeps SET destructions = destructions + $1 WHERE id = 1', [r.rows.length]);
      return r.rows.map((x) => ({ operator: String(x.operator), tid: String(x.tid) }));
    });
  }

  /**
   * Rewrite the holder table when records were destroyed since the last rewrite. A plain VACUUM only marks the
   * space of deleted rows reusable and leaves their bytes in the data files until overwritten (measured: 12 of
   * 30 deleted rows still readable there); VACUUM FULL writes the live rows to a new file and drops the old one.
   */
  async vacuumIfDue(): Promise<boolean> {
    const s = (await this.db.query<{ destructions: number; vacuumed_through: number }>('SELECT destructions, vacuumed_through FROM realname_sweeps WHERE id = 1')).rows[0];
    const through = Number(s.destructions);
    if (through <= Number(s.vacuumed_through)) return false;
    await this.db.exec('VACUUM FULL holder_records');
    await this.db.query('UPDATE realname_sweeps SET vacuumed_through = greatest(vacuumed_through, $1), last_vacuum_at = now() WHERE id = 1', [through]);
    return true;
  }

  async sweepState(): Promise<{ destructions: number; vacuumedThrough: number; lastVacuumAt?: Date }> {
    const s = (await this.db.query('SELECT * FROM realname_sweeps WHERE id = 1')).rows[0];
    return { destructions: Number(s.destructions), vacuumedThrough: Number(s.vacuumed_through), lastVacuumAt: s.last_vacuum_at ? date(s.last_vacuum_at) : undefined };
  }

  // ------------------------------------------------------------------------------------- master keys --

  /** Records and TOTP secrets still sealed under `masterKeyId` (a rotation re-seals them in batches). */
  async wrappedWith(masterKeyId: string, limit: number): Promise<{ records: HolderRecordRow[]; totps: TerminalTotpRow[] }> {
    const r = await this.db.query('SELECT * FROM holder_records WHERE master_key_id = $1 ORDER BY operator, tid, issuance LIMIT $2', [masterKeyId, limit]);
    const t = await this.db.query('SELECT * FROM terminal_totp WHERE master_key_id = $1 ORDER BY client_id LIMIT $2', [masterKeyId, limit]);
    return {
      records: r.rows.map(recordRow),
      totps: t.rows.map(totpRow),
    };
  }

  /** Replace a record's wrapped data key, if it is still wrapped with `from` (a concurrent destruction wins). */
  async rewrapRecord(r: Pick<HolderRecordRow, 'operator' | 'tid' | 'issuance'>, from: string, to: string, wrappedKey: Uint8Array, q: Queryable = this.db): Promise<boolean> {
    return (await q.query('UPDATE holder_records SET master_key_id = $5, wrapped_key = $6 WHERE operator = $1 AND tid = $2 AND issuance = $3 AND master_key_id = $4', [r.operator, r.tid, r.issuance, from, to, wrappedKey])).rowCount === 1;
  }

  async rewrapTotp(clientId: string, from: string, to: string, secretSealed: Uint8Array, q: Queryable = this.db): Promise<boolean> {
    return (await q.query('UPDATE terminal_totp SET master_key_id = $3, secret_sealed = $4 WHERE client_id = $1 AND master_key_id = $2', [clientId, from, to, secretSealed])).rowCount === 1;
  }

  /** Master key ids anything is still sealed under. */
  async masterKeysInUse(): Promise<string[]> {
    const r = await this.db.query<{ id: string }>('SELECT master_key_id AS id FROM holder_records UNION SELECT master_key_id FROM terminal_totp ORDER BY 1');
    return r.rows.map((x) => String(x.id));
  }

  // ------------------------------------------------------------------------------------------- limits --

  /** Reads allowed for a ticket of `kind`: its row, else kind 0's, else undefined (the service's default). */
  async readLimit(kind: number | undefined, q: Queryable = this.db): Promise<number | undefined> {
    const r = await q.query<{ max_reads: number }>('SELECT max_reads FROM realname_read_limits WHERE kind IN ($1, 0) ORDER BY kind DESC LIMIT 1', [kind ?? 0]);
    return r.rows[0] ? Number(r.rows[0].max_reads) : undefined;
  }

  async setReadLimit(kind: number, maxReads: number): Promise<void> {
    await this.db.query('INSERT INTO realname_read_limits (kind, max_reads) VALUES ($1, $2) ON CONFLICT (kind) DO UPDATE SET max_reads = excluded.max_reads', [kind, maxReads]);
  }

  async readLimits(): Promise<{ kind: number; maxReads: number }[]> {
    return (await this.db.query('SELECT kind, max_reads FROM realname_read_limits ORDER BY kind')).rows.map((r) => ({ kind: Number(r.kind), maxReads: Number(r.max_reads) }));
  }

  // -------------------------------------------------------------------------------------- terminals --

  async setTotp(row: TerminalTotpRow, q: Queryable = this.db): Promise<void> {
    await q.query(
      `INSERT INTO terminal_totp (client_id, algorithm, digits, period, master_key_id, secret_sealed) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (client_id) DO UPDATE SET algorithm = excluded.algorithm, digits = excluded.digits, period = excluded.period, master_key_id = excluded.master_key_id, secret_sealed = excluded.secret_sealed`,
      [row.clientId, row.algorithm, row.digits, row.period, row.masterKeyId, row.secretSealed],
    );
  }

  async totp(clientId: string, q: Queryable = this.db): Promise<TerminalTotpRow | undefined> {
    const r = (await q.query('SELECT * FROM terminal_totp WHERE client_id = $1', [clientId])).rows[0];
    return r ? totpRow(r) : undefined;
  }

  /**
   * Spend a TOTP step of a terminal; false when it was spent before (by any service process on this database).
   * Steps before `purgeBefore` are forgotten now and then: codes that old are refused by the clock check.
   */
  async useTotpStep(clientId: string, step: number, purgeBefore: number): Promise<boolean> {
    const r = await this.db.query('INSERT INTO totp_used (client_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING', [clientId, step]);
    if (Math.random() < 0.02) await this.db.query('DELETE FROM totp_used WHERE client_id = $1 AND step < $2', [clientId, purgeBefore]);
    return r.rowCount === 1;
  }

  async setEncryptionKey(clientId: string, key: Uint8Array, certificate: Uint8Array | undefined, q: Queryable = this.db): Promise<void> {
    await q.query('UPDATE clients SET encryption_key = $2, encryption_certificate = $3 WHERE client_id = $1', [clientId, key, certificate ?? null]);
  }

  // ----------------------------------------------------------------------------------- permissions --

  /** Add a grant (idempotent: the same grant twice is one row). */
  async grant(clientId: string, g: { operator?: string; station?: string; kind?: number }): Promise<{ grant: PermissionGrant; created: boolean }> {
    const ins = await this.db.query(
      'INSERT INTO terminal_permissions (client_id, operator, station, kind) VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, operator, station, kind) DO NOTHING RETURNING *',
      [clientId, g.operator ?? null, g.station ?? null, g.kind ?? null],
    );
    if (ins.rows[0]) return { grant: grantRow(ins.rows[0]), created: true };
    const r = await this.db.query(
      'SELECT * FROM terminal_permissions WHERE client_id = $1 AND operator IS NOT DISTINCT FROM $2 AND station IS NOT DISTINCT FROM $3 AND kind IS NOT DISTINCT FROM $4',
      [clientId, g.operator ?? null, g.station ?? null, g.kind ?? null],
    );
    return { grant: grantRow(r.rows[0]), created: false };
  }

  async revokeGrant(clientId: string, grantId: number): Promise<boolean> {
    return (await this.db.query('DELETE FROM terminal_permissions WHERE client_id = $1 AND grant_id = $2', [clientId, grantId])).rowCount === 1;
  }

  async grants(clientId?: string): Promise<PermissionGrant[]> {
    const r = clientId
      ? await this.db.query('SELECT * FROM terminal_permissions WHERE client_id = $1 ORDER BY grant_id', [clientId])
      : await this.db.query('SELECT * FROM terminal_permissions ORDER BY client_id, grant_id');
    return r.rows.map(grantRow);
  }

  /** Does one of the terminal's grants match this ticket? */
  async permitted(clientId: string, t: Pick<RealNameTicketRecord, 'operator' | 'origin' | 'destination' | 'kind'>, q: Queryable = this.db): Promise<boolean> {
    const r = await q.query(
      `SELECT 1 FROM terminal_permissions WHERE client_id = $1
         AND (operator IS NULL OR operator = $2)
         AND (station IS NULL OR station = $3 OR station = $4)
         AND (kind IS NULL OR kind = $5)
       LIMIT 1`,
      [clientId, t.operator, t.origin ?? null, t.destination ?? null, t.kind ?? 0],
    );
    return r.rowCount > 0;
  }

  // -------------------------------------------------------------------------------------- the log --

  async log(e: AccessLogEntry, q: Queryable = this.db): Promise<void> {
    await q.query('INSERT INTO holder_access_log (client_id, operator, tid, outcome, reason, reads_left, issuance) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      e.clientId.slice(0, 64),
      e.operator?.slice(0, 16) ?? null,
      e.tid?.slice(0, 64) ?? null,
      e.outcome,
      e.reason,
      e.readsLeft ?? null,
      e.issuance ?? null,
    ]);
  }

  /** The log in the order it was written; by ticket (and one issuance of it), by client, at most `limit` entries. */
  async accessLog(filter: { tid?: string; issuance?: number; clientId?: string; limit?: number } = {}): Promise<AccessLogEntry[]> {
    const r = await this.db.query(
      'SELECT * FROM holder_access_log WHERE ($1::text IS NULL OR tid = $1) AND ($2::text IS NULL OR client_id = $2) AND ($4::integer IS NULL OR issuance = $4) ORDER BY entry_id LIMIT $3',
      [filter.tid ?? null, filter.clientId ?? null, filter.limit ?? 1000, filter.issuance ?? null],
    );
    return r.rows.map((x) => ({
      entryId: Number(x.entry_id),
      at: date(x.at),
      clientId: String(x.client_id),
      operator: opt(x.operator as string | null),
      tid: opt(x.tid as string | null),
      outcome: x.outcome as 'read' | 'refused',
      reason: String(x.reason),
      readsLeft: optNum(x.reads_left),
      issuance: optNum(x.issuance),
    }));
  }
}

function recordRow(r: Record<string, unknown>): HolderRecordRow {
  return { operator: String(r.operator), tid: String(r.tid), issuance: Number(r.issuance), masterKeyId: String(r.master_key_id), wrappedKey: u8(r.wrapped_key), sealed: u8(r.sealed) };
}

function totpRow(r: Record<string, unknown>): TerminalTotpRow {
  return { clientId: String(r.client_id), algorithm: r.algorithm as TerminalTotpRow['algorithm'], digits: Number(r.digits), period: Number(r.period), masterKeyId: String(r.master_key_id), secretSealed: u8(r.secret_sealed) };
}
