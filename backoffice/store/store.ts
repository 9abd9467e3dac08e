// The back office's system of record over a Database (PGlite or PostgreSQL): keys and their history, cards,
// TIDs, tickets, bills, receipts, clients, nonces, inventory. Every write is one transaction; races are
// settled by the database (unique keys, ON CONFLICT, row locks), never by the application.

import { createHash } from 'node:crypto';
import { EticketError } from '../../sdk/errors.js';
import type { SuiteName } from '../../sdk/spec.js';
import { DatabaseError, openPglite, openPostgres, type Database, type PgliteOptions, type Queryable } from './database.js';
import { HolderStore } from './holders.js';
import { migrate } from './migrate.js';

/** A domain rule refused the write (sold out, TID taken, unknown service): the caller's input, not a fault. */
export class StoreConflictError extends EticketError {
  constructor(message: string, readonly reason: string) {
    super(message);
  }
}

/** The thing asked for is not in the store. */
export class NotFoundError extends EticketError {}

export interface AuthorityKeyRecord {
  keyId: string;
  operator: string;
  suite: SuiteName;
  role: 'root' | 'signing';
  publicKey: Uint8Array;
  identity?: string;
  certificate?: Uint8Array;
  certifiedBy?: string;
  keyName: string;
  validFrom: Date;
  validUntil?: Date;
  retiredAt?: Date;
  createdAt?: Date;
}

export interface CardRecord {
  serial: string;
  suite: SuiteName;
  encryptionCertificate?: Uint8Array;
  signingCertificate?: Uint8Array;
  identity?: string;
}

export type TicketStatus = 'sealed' | 'loaded' | 'deleted' | 'cancelled';

export interface TicketRecord {
  operator: string;
  tid: string;
  cardSerial: string;
  sellerId?: string;
  keyId: string;
  face: Uint8Array;
  verificationCode: Uint8Array;
  sealed: Uint8Array;
  serviceDate: number;
  fare?: number;
  currency?: string;
  status: TicketStatus;
  sequenceNumber?: number;
  issuedAt: Date;
  loadedAt?: Date;
  closedAt?: Date;
  replacedBy?: string;
  serviceId?: number;
  travelClass?: string;
  coach?: string;
  seat?: string;
  /**
   * The how-many-th issuance of this TID the row is: 1, and one more each time a cancelled, never-loaded ticket is
   * issued again under its TID (withdrawn from a full card, re-run onto the next one). Its bills carry the same number.
   */
  issuance: number;
}

export interface BillRecord {
  billId: string;
  operator: string;
  tid: string;
  kind: 'sale' | 'refund';
  sellerId?: string;
  cardSerial: string;
  price: number;
  currency: string;
  soldAt: Date;
  keyId: string;
  document: string;
  /** The issuance of the ticket this bill was signed for (TicketRecord.issuance): one sale and at most one refund each. */
  issuance: number;
}

export interface ReceiptRecord {
  receiptId?: number;
  cardSerial: string;
  operator: string;
  tid: string;
  kind: 'usage' | 'deletion';
  event: number;
  counter: number;
  mode: 'pki' | 'sym';
  encoded: Uint8Array;
  transaction?: Record<string, string>;
  source: string;
  receivedAt?: Date;
}

export interface ClientRecord {
  clientId: string;
  role: 'seller' | 'terminal';
  name: string;
  operator: string;
  suite: SuiteName;
  publicKey: Uint8Array;
  certificate?: Uint8Array;
  identity?: string;
  keyId: string;
  status: 'active' | 'revoked';
  createdAt?: Date;
  /** Terminals only. */
  kind?: 'issuing' | 'gate' | 'inspector';
  station?: string;
  /** Checking terminals (real-name): the public key holder answers are sealed to, and its CA certificate (RSA). */
  encryptionKey?: Uint8Array;
  encryptionCertificate?: Uint8Array;
}

export interface ServiceClassSpec {
  class: string;
  seats: number;
  price: number;
  currency: string;
  /** Seats per coach when numbering (default 100). */
  coachSize?: number;
}

export interface ServiceRecord {
  serviceId: number;
  operator: string;
  code: string;
  serviceDate: number;
  origin?: string;
  destination?: string;
  departure?: number;
  kind?: number;
  classes: { class: string; price: number; currency: string; capacity: number; seatsLeft: number }[];
}

export interface SeatTaken {
  serviceId: number;
  class: string;
  coach: string;
  seat: string;
  price: number;
  currency: string;
}

export interface SalesRow {
  seller: string;
  day: string;
  sold: number;
  refunded: number;
  gross: number;
  refunds: number;
  net: number;
  currency: string;
}

const u8 = (v: unknown): Uint8Array => (v instanceof Uint8Array ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(0));
const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);
const date = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
const optDate = (v: unknown): Date | undefined => (v === null || v === undefined ? undefined : date(v));
const num = (v: unknown): number => Number(v);
const optNum = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

function keyRow(r: Record<string, unknown>): AuthorityKeyRecord {
  return {
    keyId: String(r.key_id),
    operator: String(r.operator),
    suite: r.suite as SuiteName,
    role: r.role as 'root' | 'signing',
    publicKey: u8(r.public_key),
    identity: opt(r.identity as string | null),
    certificate: r.certificate ? u8(r.certificate) : undefined,
    certifiedBy: opt(r.certified_by as string | null),
    keyName: String(r.key_name),
    validFrom: date(r.valid_from),
    validUntil: optDate(r.valid_until),
    retiredAt: optDate(r.retired_at),
    createdAt: optDate(r.created_at),
  };
}

function ticketRow(r: Record<string, unknown>): TicketRecord {
  return {
    operator: String(r.operator),
    tid: String(r.tid),
    cardSerial: String(r.card_serial),
    sellerId: opt(r.seller_id as string | null),
    keyId: String(r.key_id),
    face: u8(r.face),
    verificationCode: u8(r.verification_code),
    sealed: u8(r.sealed),
    serviceDate: num(r.service_date),
    fare: optNum(r.fare),
    currency: opt(r.currency as string | null),
    status: r.status as TicketStatus,
    sequenceNumber: optNum(r.sequence_number),
    issuedAt: date(r.issued_at),
    loadedAt: optDate(r.loaded_at),
    closedAt: optDate(r.closed_at),
    replacedBy: opt(r.replaced_by as string | null),
    serviceId: optNum(r.service_id),
    travelClass: opt(r.class as string | null),
    coach: opt(r.coach as string | null),
    seat: opt(r.seat as string | null),
    issuance: num(r.issuance),
  };
}

function billRow(r: Record<string, unknown>): BillRecord {
  return {
    billId: String(r.bill_id),
    operator: String(r.operator),
    tid: String(r.tid),
    kind: r.kind as 'sale' | 'refund',
    sellerId: opt(r.seller_id as string | null),
    cardSerial: String(r.card_serial),
    price: num(r.price),
    currency: String(r.currency),
    soldAt: date(r.sold_at),
    keyId: String(r.key_id),
    document: String(r.document),
    issuance: num(r.issuance),
  };
}

function clientRow(r: Record<string, unknown>): ClientRecord {
  return {
    clientId: String(r.client_id),
    role: r.role as 'seller' | 'terminal',
    name: String(r.name),
    operator: String(r.operator),
    suite: r.suite as SuiteName,
    publicKey: u8(r.public_key),
    certificate: r.certificate ? u8(r.certificate) : undefined,
    identity: opt(r.identity as string | null),
    keyId: String(r.key_id),
    status: r.status as 'active' | 'revoked',
    createdAt: optDate(r.created_at),
    kind: opt(r.kind as ClientRecord['kind'] | null),
    station: opt(r.station as string | null),
    encryptionKey: r.encryption_key ? u8(r.encryption_key) : undefined,
    encryptionCertificate: r.encryption_certificate ? u8(r.encryption_certificate) : undefined,
  };
}

function receiptRow(r: Record<string, unknown>): ReceiptRecord {
  return {
    receiptId: num(r.receipt_id),
    cardSerial: String(r.card_serial),
    operator: String(r.operator),
    tid: String(r.tid),
    kind: r.kind as 'usage' | 'deletion',
    event: num(r.event),
    counter: num(r.counter),
    mode: r.mode as 'pki' | 'sym',
    encoded: u8(r.encoded),
    transaction: opt(r.transaction as Record<string, string> | null),
    source: String(r.source),
    receivedAt: optDate(r.received_at),
  };
}

export interface OpenStoreOptions extends PgliteOptions {
  /** postgres://… : a PostgreSQL server; otherwise PGlite in `workDir`. */
  url?: string;
  poolSize?: number;
}

export class Store {
  /** The real-name tables (holder records, terminal TOTP, permissions, read limits, access log). */
  readonly holders: HolderStore;

  private constructor(readonly db: Database) {
    this.holders = new HolderStore(db);
  }

  /** Open (and migrate) the store: a PostgreSQL server when `url` is given, else PGlite in `workDir`. */
  static async open(workDir: string, options: OpenStoreOptions = {}): Promise<Store> {
    const db = options.url ? await openPostgres(options.url, { poolSize: options.poolSize }) : await openPglite(workDir, options);
    try {
      await migrate(db);
    } catch (e) {
      await db.close().catch(() => undefined);
      throw e;
    }
    return new Store(db);
  }

  static async over(db: Database): Promise<Store> {
    await migrate(db);
    return new Store(db);
  }

  get engine(): 'pglite' | 'postgres' {
    return this.db.engine;
  }

  close(): Promise<void> {
    return this.db.close();
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: { serializable?: boolean }): Promise<T> {
    return this.db.transaction(fn, options);
  }

  // ------------------------------------------------------------------------------------------ settings --

  async setting(name: string, q: Queryable = this.db): Promise<string | undefined> {
    return (await q.query<{ value: string }>('SELECT value FROM settings WHERE name = $1', [name])).rows[0]?.value;
  }

  /** Set once: a second process setting another value gets the first one back. */
  async initSetting(name: string, value: string, q: Queryable = this.db): Promise<string> {
    await q.query('INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, value]);
    return (await this.setting(name, q))!;
  }

  // -------------------------------------------------------------------------------------- authority keys --

  /** Record a key (idempotent for the same key id). */
  async addAuthorityKey(k: AuthorityKeyRecord, q: Queryable = this.db): Promise<void> {
    await q.query(
      `INSERT INTO authority_keys (key_id, operator, suite, role, public_key, identity, certificate, certified_by, key_name, valid_from, valid_until, retired_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (key_id) DO NOTHING`,
      [k.keyId, k.operator, k.suite, k.role, k.publicKey, k.identity ?? null, k.certificate ?? null, k.certifiedBy ?? null, k.keyName, k.validFrom, k.validUntil ?? null, k.retiredAt ?? null],
    );
  }

  async authorityKeys(operator?: string, q: Queryable = this.db): Promise<AuthorityKeyRecord[]> {
    const r = operator
      ? await q.query('SELECT * FROM authority_keys WHERE operator = $1 ORDER BY valid_from, created_at', [operator])
      : await q.query('SELECT * FROM authority_keys ORDER BY valid_from, created_at');
    return r.rows.map(keyRow);
  }

  async authorityKey(keyId: string, q: Queryable = this.db): Promise<AuthorityKeyRecord | undefined> {
    const r = await q.query('SELECT * FROM authority_keys WHERE key_id = $1', [keyId]);
    return r.rows[0] ? keyRow(r.rows[0]) : undefined;
  }

  /** The key bills are signed with now: the current certified signing key, else the root key. */
  async currentSigningKey(operator: string, q: Queryable = this.db): Promise<AuthorityKeyRecord | undefined> {
    const r = await q.query(
      `SELECT * FROM authority_keys WHERE operator = $1 AND retired_at IS NULL
       ORDER BY (role = 'signing') DESC, valid_from DESC LIMIT 1`,
      [operator],
    );
    return r.rows[0] ? keyRow(r.rows[0]) : undefined;
  }

  async rootKey(operator: string, q: Queryable = this.db): Promise<AuthorityKeyRecord | undefined> {
    const r = await q.query(`SELECT * FROM authority_keys WHERE operator = $1 AND role = 'root' AND retired_at IS NULL ORDER BY valid_from DESC LIMIT 1`, [operator]);
    return r.rows[0] ? keyRow(r.rows[0]) : undefined;
  }

  /**
   * Make `next` the current signing key: the previous one is retired at `next.validFrom`, in one transaction.
   * A concurrent rotation loses on the one-current-key index and gets StoreConflictError.
   */
  async rotateSigningKey(next: AuthorityKeyRecord, expectedCurrent: string | undefined): Promise<{ retired?: string }> {
    try {
      return await this.db.transaction(async (tx) => {
        const cur = (await tx.query<{ key_id: string }>(`SELECT key_id FROM authority_keys WHERE operator = $1 AND role = 'signing' AND retired_at IS NULL FOR UPDATE`, [next.operator])).rows[0];
        if ((cur?.key_id ?? undefined) !== expectedCurrent) throw new StoreConflictError(`another rotation happened meanwhile (current key is now ${cur?.key_id ?? 'the root key'}): run it again`, 'concurrent_rotation');
        if (cur) await tx.query('UPDATE authority_keys SET retired_at = $2 WHERE key_id = $1', [cur.key_id, next.validFrom]);
        await this.addAuthorityKey(next, tx);
        return { retired: cur?.key_id };
      });
    } catch (e) {
      if (e instanceof DatabaseError && e.code === '23505') throw new StoreConflictError('another rotation happened meanwhile: run it again', 'concurrent_rotation');
      throw e;
    }
  }

  // ------------------------------------------------------------------------------------------------ cards --

  async recordCard(c: CardRecord, q: Queryable = this.db): Promise<void> {
    await q.query(
      `INSERT INTO cards (serial, suite, encryption_certificate, signing_certificate, identity) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (serial) DO UPDATE SET encryption_certificate = coalesce(cards.encryption_certificate, excluded.encryption_certificate),
         signing_certificate = coalesce(cards.signing_certificate, excluded.signing_certificate), identity = coalesce(cards.identity, excluded.identity)`,
      [c.serial, c.suite, c.encryptionCertificate ?? null, c.signingCertificate ?? null, c.identity ?? null],
    );
  }

  async card(serial: string, q: Queryable = this.db): Promise<CardRecord | undefined> {
    const r = (await q.query('SELECT * FROM cards WHERE serial = $1', [serial])).rows[0];
    if (!r) return undefined;
    return { serial: String(r.serial), suite: r.suite as SuiteName, encryptionCertificate: r.encryption_certificate ? u8(r.encryption_certificate) : undefined, signingCertificate: r.signing_certificate ? u8(r.signing_certificate) : undefined, identity: opt(r.identity as string | null) };
  }

  // ------------------------------------------------------------------------------------------------- TIDs --

  /** The next number of the operator's TID counter (row-locked: concurrent issuers get distinct numbers). */
  async nextTidNumber(operator: string, q: Queryable): Promise<number> {
    const r = await q.query<{ last: number }>(
      `INSERT INTO tid_counters (operator, last) VALUES ($1, 1) ON CONFLICT (operator) DO UPDATE SET last = tid_counters.last + 1 RETURNING last`,
      [operator],
    );
    return num(r.rows[0].last);
  }

  /** Raise the counter to at least `atLeast` (ledger import). */
  async bumpTidCounter(operator: string, atLeast: number, q: Queryable = this.db): Promise<void> {
    await q.query(`INSERT INTO tid_counters (operator, last) VALUES ($1, $2) ON CONFLICT (operator) DO UPDATE SET last = greatest(tid_counters.last, excluded.last)`, [operator, atLeast]);
  }

  async tidRow(operator: string, tid: string, q: Queryable = this.db): Promise<{ cardSerial?: string; requestKey?: string; source: string } | undefined> {
    const r = (await q.query('SELECT card_serial, request_key, source FROM tids WHERE operator = $1 AND tid = $2', [operator, tid])).rows[0];
    return r ? { cardSerial: opt(r.card_serial as string | null), requestKey: opt(r.request_key as string | null), source: String(r.source) } : undefined;
  }

  async tidForRequest(operator: string, requestKey: string, q: Queryable = this.db): Promise<string | undefined> {
    return (await q.query<{ tid: string }>('SELECT tid FROM tids WHERE operator = $1 AND request_key = $2', [operator, requestKey])).rows[0]?.tid;
  }

  /**
   * Claim `tid` for `card`: new TIDs are inserted; a TID already claimed for this card, or released (card
   * full, cancelled before loading), is taken again. Returns false when another card holds it.
   */
  async claimTid(operator: string, tid: string, card: string, requestKey: string | undefined, q: Queryable): Promise<boolean> {
    const ins = await q.query(`INSERT INTO tids (operator, tid, card_serial, request_key) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING tid`, [operator, tid, card, requestKey ?? null]);
    if (ins.rowCount === 1) return true;
    const upd = await q.query(
      `UPDATE tids SET card_serial = $3, request_key = coalesce(request_key, $4) WHERE operator = $1 AND tid = $2 AND (card_serial IS NULL OR card_serial = $3) RETURNING tid`,
      [operator, tid, card, requestKey ?? null],
    );
    if (upd.rowCount === 1) return true;
    // A request key that collides (same line content for another TID) is not a conflict of the TID itself.
    const check = await q.query(`SELECT 1 FROM tids WHERE operator = $1 AND tid = $2`, [operator, tid]);
    if (check.rowCount === 0) throw new StoreConflictError(`batch line fingerprint already names another TID`, 'request_key');
    return false;
  }

  /**
   * The rows of `tids` that a batch's chunk names, by TID or by request key (one statement): a chunk issues in
   * bulk only what nothing names yet, the rest one by one (Backoffice.issueMany).
   */
  async tidsNamed(operator: string, tids: string[], requestKeys: string[], q: Queryable = this.db): Promise<{ tid: string; requestKey?: string }[]> {
    if (!tids.length && !requestKeys.length) return [];
    const r = await q.query<{ tid: string; request_key: string | null }>('SELECT tid, request_key FROM tids WHERE operator = $1 AND (tid = ANY($2::text[]) OR request_key = ANY($3::text[]))', [operator, tids, requestKeys]);
    return r.rows.map((x) => ({ tid: x.tid, requestKey: opt(x.request_key) }));
  }

  /** `n` numbers of the operator's TID counter at once (row-locked like nextTidNumber): the first of them. */
  async nextTidNumbers(operator: string, n: number, q: Queryable): Promise<number> {
    const r = await q.query<{ last: number }>(
      `INSERT INTO tid_counters (operator, last) VALUES ($1, $2) ON CONFLICT (operator) DO UPDATE SET last = tid_counters.last + $2 RETURNING last`,
      [operator, n],
    );
    return num(r.rows[0].last) - n + 1;
  }

  /**
   * Claim new TIDs for `card` in one statement; a TID or request key already in the table is left alone. Returns
   * the TIDs claimed (the others go the one-by-one way, claimTid).
   */
  async claimNewTids(operator: string, card: string, claims: { tid: string; requestKey?: string }[], q: Queryable): Promise<Set<string>> {
    if (!claims.length) return new Set();
    const r = await q.query<{ tid: string }>(
      `INSERT INTO tids (operator, tid, card_serial, request_key) SELECT $1, t, $2, k FROM unnest($3::text[], $4::text[]) AS x(t, k) ON CONFLICT DO NOTHING RETURNING tid`,
      [operator, card, claims.map((c) => c.tid), claims.map((c) => c.requestKey ?? null)],
    );
    return new Set(r.rows.map((x) => x.tid));
  }

  /** Import TIDs from an old ledger.json: kept unique, with the card they went to. */
  async importLedgerTids(operator: string, entries: { tid: string; card?: string; requestKey?: string }[], counter: number): Promise<number> {
    return this.db.transaction(async (tx) => {
      let n = 0;
      for (const e of entries) {
        const r = await tx.query(`INSERT INTO tids (operator, tid, card_serial, request_key, source) VALUES ($1, $2, $3, $4, 'ledger') ON CONFLICT DO NOTHING`, [operator, e.tid, e.card ?? null, e.requestKey ?? null]);
        n += r.rowCount;
      }
      await this.bumpTidCounter(operator, counter, tx);
      return n;
    });
  }

  // ---------------------------------------------------------------------------------------------- tickets --

  /**
   * Insert a ticket (issuance 1), or replace a cancelled, never-loaded one under the same TID as its next issuance
   * (the row's issuance + 1); the stored row, or undefined when the TID is held.
   */
  async insertTicket(t: Omit<TicketRecord, 'issuedAt' | 'status' | 'issuance'> & { status?: TicketStatus; issuedAt?: Date }, q: Queryable): Promise<TicketRecord | undefined> {
    const r = await q.query(
      `INSERT INTO tickets (operator, tid, card_serial, seller_id, key_id, face, verification_code, sealed, service_date, fare, currency, status, issued_at, service_id, class, coach, seat)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
       ON CONFLICT (operator, tid) DO UPDATE SET card_serial = excluded.card_serial, seller_id = excluded.seller_id, key_id = excluded.key_id, face = excluded.face,
         verification_code = excluded.verification_code, sealed = excluded.sealed, service_date = excluded.service_date, fare = excluded.fare, currency = excluded.currency,
         status = excluded.status, issued_at = excluded.issued_at, sequence_number = NULL, loaded_at = NULL, closed_at = NULL,
         service_id = excluded.service_id, class = excluded.class, coach = excluded.coach, seat = excluded.seat, issuance = tickets.issuance + 1
       WHERE tickets.status = 'cancelled' AND tickets.loaded_at IS NULL
       RETURNING *`,
      [t.operator, t.tid, t.cardSerial, t.sellerId ?? null, t.keyId, t.face, t.verificationCode, t.sealed, t.serviceDate, t.fare ?? null, t.currency ?? null, t.status ?? 'sealed', t.issuedAt ?? new Date(), t.serviceId ?? null, t.travelClass ?? null, t.coach ?? null, t.seat ?? null],
    );
    return r.rows[0] ? ticketRow(r.rows[0]) : undefined;
  }

  /** New tickets (their TIDs claimed in this transaction, so no row holds them) in one statement, sealed, issuance 1. */
  async insertNewTickets(ts: Omit<TicketRecord, 'status' | 'issuance'>[], q: Queryable): Promise<TicketRecord[]> {
    if (!ts.length) return [];
    const c = <T>(f: (t: Omit<TicketRecord, 'status' | 'issuance'>) => T) => ts.map(f);
    const r = await q.query(
      `INSERT INTO tickets (operator, tid, card_serial, seller_id, key_id, face, verification_code, sealed, service_date, fare, currency, status, issued_at)
       SELECT o, t, c, s, k, f, v, x, d, fa, cu, 'sealed', i
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[], $9::int[], $10::bigint[], $11::text[], $12::timestamptz[])
         AS u(o, t, c, s, k, f, v, x, d, fa, cu, i)
       RETURNING tid`,
      [c((t) => t.operator), c((t) => t.tid), c((t) => t.cardSerial), c((t) => t.sellerId ?? null), c((t) => t.keyId), c((t) => t.face), c((t) => t.verificationCode), c((t) => t.sealed), c((t) => t.serviceDate), c((t) => t.fare ?? null), c((t) => t.currency ?? null), c((t) => t.issuedAt)],
    );
    // No RETURNING *: the rows are what was written (sending the bytes back costs more than the insert).
    if (r.rowCount !== ts.length) throw new StoreConflictError(`${ts.length - r.rowCount} of ${ts.length} tickets were not written`, 'tid_taken');
    return ts.map((t) => ({ ...t, status: 'sealed' as const, issuance: 1 }));
  }

  async ticket(operator: string, tid: string, q: Queryable = this.db): Promise<TicketRecord | undefined> {
    const r = (await q.query('SELECT * FROM tickets WHERE operator = $1 AND tid = $2', [operator, tid])).rows[0];
    return r ? ticketRow(r) : undefined;
  }

  /** Sealed tickets waiting for `card` (what an issuing terminal loads when the card is presented). */
  async pendingFor(cardSerial: string, q: Queryable = this.db): Promise<TicketRecord[]> {
    return (await q.query(`SELECT * FROM tickets WHERE card_serial = $1 AND status = 'sealed' ORDER BY issued_at, tid`, [cardSerial])).rows.map(ticketRow);
  }

  async ticketsBySeller(sellerId: string | null, limit = 1000, q: Queryable = this.db): Promise<TicketRecord[]> {
    const r = sellerId === null ? await q.query('SELECT * FROM tickets WHERE seller_id IS NULL ORDER BY issued_at LIMIT $1', [limit]) : await q.query('SELECT * FROM tickets WHERE seller_id = $1 ORDER BY issued_at LIMIT $2', [sellerId, limit]);
    return r.rows.map(ticketRow);
  }

  async allTickets(q: Queryable = this.db): Promise<TicketRecord[]> {
    return (await q.query('SELECT * FROM tickets ORDER BY issued_at, tid')).rows.map(ticketRow);
  }

  /** The card took the ticket: sealed → loaded (idempotent). */
  async markLoaded(operator: string, tid: string, sequenceNumber: number | undefined, q: Queryable = this.db): Promise<boolean> {
    const r = await q.query(`UPDATE tickets SET status = 'loaded', loaded_at = coalesce(loaded_at, now()), sequence_number = coalesce($3, sequence_number) WHERE operator = $1 AND tid = $2 AND status IN ('sealed', 'loaded') RETURNING tid`, [operator, tid, sequenceNumber ?? null]);
    return r.rowCount === 1;
  }

  /**
   * Several tickets the card took, in one statement (a batch marks them a chunk at a time): sealed → loaded,
   * idempotent. Returns the TIDs marked.
   */
  async markLoadedMany(operator: string, loaded: { tid: string; sequenceNumber?: number }[], q: Queryable = this.db): Promise<string[]> {
    if (!loaded.length) return [];
    const r = await q.query<{ tid: string }>(
      `UPDATE tickets t SET status = 'loaded', loaded_at = coalesce(t.loaded_at, now()), sequence_number = coalesce(v.seq, t.sequence_number)
       FROM unnest($2::text[], $3::integer[]) AS v(tid, seq)
       WHERE t.operator = $1 AND t.tid = v.tid AND t.status IN ('sealed', 'loaded') RETURNING t.tid`,
      [operator, loaded.map((l) => l.tid), loaded.map((l) => l.sequenceNumber ?? null)],
    );
    return r.rows.map((row) => row.tid);
  }

  /**
   * The card did not take the ticket and never will (it was full): the ticket is cancelled, its seat freed,
   * and its TID released so that the same line can go to another card.
   */
  async releaseUnloaded(operator: string, tid: string): Promise<void> {
    await this.db.transaction((tx) => this.cancelSealed(operator, tid, tx));
  }

  /**
   * Inside the caller's transaction: a sealed ticket (on no card) is cancelled, its seat freed, its holder record
   * destroyed and its TID and request key released. False when it was not sealed (loaded, closed or unknown).
   */
  async cancelSealed(operator: string, tid: string, q: Queryable): Promise<boolean> {
    const r = await q.query(`UPDATE tickets SET status = 'cancelled', closed_at = now() WHERE operator = $1 AND tid = $2 AND status = 'sealed' RETURNING tid`, [operator, tid]);
    if (r.rowCount !== 1) return false;
    await this.freeSeat(operator, tid, q);
    await this.holders.destroy(operator, tid, 'cancelled', new Date(), q);
    await q.query('UPDATE tids SET card_serial = NULL, request_key = NULL WHERE operator = $1 AND tid = $2', [operator, tid]);
    return true;
  }

  /** The ticket's row, locked until the caller's transaction ends (two rebookings of one ticket queue here). */
  async lockTicket(operator: string, tid: string, q: Queryable): Promise<TicketRecord | undefined> {
    const r = (await q.query('SELECT * FROM tickets WHERE operator = $1 AND tid = $2 FOR UPDATE', [operator, tid])).rows[0];
    return r ? ticketRow(r) : undefined;
  }

  /**
   * Close a ticket (deleted on its card, or cancelled before loading), freeing its seat and destroying its holder
   * record (real-name) in the same transaction. False if already closed.
   */
  async closeTicket(operator: string, tid: string, status: 'deleted' | 'cancelled', replacedBy: string | undefined, q: Queryable): Promise<boolean> {
    const r = await q.query(
      `UPDATE tickets SET status = $3, closed_at = now(), replaced_by = coalesce($4, replaced_by) WHERE operator = $1 AND tid = $2 AND status IN ('sealed', 'loaded') RETURNING tid`,
      [operator, tid, status, replacedBy ?? null],
    );
    if (r.rowCount !== 1) return false;
    await this.freeSeat(operator, tid, q);
    await this.holders.destroy(operator, tid, status, new Date(), q);
    return true;
  }

  async setReplacedBy(operator: string, tid: string, replacedBy: string, q: Queryable = this.db): Promise<void> {
    await q.query('UPDATE tickets SET replaced_by = $3 WHERE operator = $1 AND tid = $2', [operator, tid, replacedBy]);
  }

  // ------------------------------------------------------------------------------------------------ bills --

  async insertBill(b: BillRecord, q: Queryable): Promise<void> {
    await q.query(
      `INSERT INTO bills (bill_id, operator, tid, kind, seller_id, card_serial, price, currency, sold_at, key_id, document, issuance) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [b.billId, b.operator, b.tid, b.kind, b.sellerId ?? null, b.cardSerial, b.price, b.currency, b.soldAt, b.keyId, b.document, b.issuance],
    );
  }

  /** Several bills in one statement (a batch's chunk). */
  async insertBills(bs: BillRecord[], q: Queryable): Promise<void> {
    if (!bs.length) return;
    const c = <T>(f: (b: BillRecord) => T) => bs.map(f);
    await q.query(
      `INSERT INTO bills (bill_id, operator, tid, kind, seller_id, card_serial, price, currency, sold_at, key_id, document, issuance)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::int[])`,
      [c((b) => b.billId), c((b) => b.operator), c((b) => b.tid), c((b) => b.kind), c((b) => b.sellerId ?? null), c((b) => b.cardSerial), c((b) => b.price), c((b) => b.currency), c((b) => b.soldAt), c((b) => b.keyId), c((b) => b.document), c((b) => b.issuance)],
    );
  }

  /** Every bill of the TID, of all its issuances: issuance by issuance, the sale before its refund. */
  async bills(operator: string, tid: string, q: Queryable = this.db): Promise<BillRecord[]> {
    return (await q.query('SELECT * FROM bills WHERE operator = $1 AND tid = $2 ORDER BY issuance, sold_at, kind DESC', [operator, tid])).rows.map(billRow);
  }

  /** The bills of this issuance of the ticket (its sale, and its refund if any): not those of an earlier issuance of its TID. */
  async billsOf(t: Pick<TicketRecord, 'operator' | 'tid' | 'issuance'>, q: Queryable = this.db): Promise<BillRecord[]> {
    return (await q.query('SELECT * FROM bills WHERE operator = $1 AND tid = $2 AND issuance = $3 ORDER BY sold_at, kind DESC', [t.operator, t.tid, t.issuance])).rows.map(billRow);
  }

  async bill(billId: string, q: Queryable = this.db): Promise<BillRecord | undefined> {
    const r = (await q.query('SELECT * FROM bills WHERE bill_id = $1', [billId])).rows[0];
    return r ? billRow(r) : undefined;
  }

  /** Sales per seller and UTC day: sales, refunds and net revenue in minor units, per currency. */
  async salesReport(options: { seller?: string; from?: Date; until?: Date } = {}): Promise<SalesRow[]> {
    const r = await this.db.query(
      `SELECT coalesce(seller_id, '(operator)') AS seller, to_char(sold_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, currency,
              count(*) FILTER (WHERE kind = 'sale')::int AS sold, count(*) FILTER (WHERE kind = 'refund')::int AS refunded,
              coalesce(sum(price) FILTER (WHERE kind = 'sale'), 0)::float8 AS gross, coalesce(sum(price) FILTER (WHERE kind = 'refund'), 0)::float8 AS refunds
       FROM bills
       WHERE ($1::text IS NULL OR coalesce(seller_id, '(operator)') = $1) AND ($2::timestamptz IS NULL OR sold_at >= $2) AND ($3::timestamptz IS NULL OR sold_at < $3)
       GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      [options.seller ?? null, options.from ?? null, options.until ?? null],
    );
    return r.rows.map((x) => ({ seller: String(x.seller), day: String(x.day), currency: String(x.currency), sold: num(x.sold), refunded: num(x.refunded), gross: num(x.gross), refunds: num(x.refunds), net: num(x.gross) - num(x.refunds) }));
  }

  // --------------------------------------------------------------------------------------------- receipts --

  /** Store a receipt as received; the same bytes twice are stored once. Returns whether it was new. */
  async recordReceipt(r: ReceiptRecord, q: Queryable = this.db): Promise<boolean> {
    const digest = new Uint8Array(createHash('sha256').update(r.encoded).digest());
    const res = await q.query(
      `INSERT INTO receipts (digest, card_serial, operator, tid, kind, event, counter, mode, encoded, transaction, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (digest) DO NOTHING`,
      [digest, r.cardSerial, r.operator, r.tid, r.kind, r.event, r.counter, r.mode, r.encoded, r.transaction ? JSON.stringify(r.transaction) : null, r.source],
    );
    return res.rowCount === 1;
  }

  async receipts(operator: string, tid: string, q: Queryable = this.db): Promise<ReceiptRecord[]> {
    return (await q.query('SELECT * FROM receipts WHERE operator = $1 AND tid = $2 ORDER BY receipt_id', [operator, tid])).rows.map(receiptRow);
  }

  // ---------------------------------------------------------------------------------------------- clients --

  /** Register a client; `also` runs in the same transaction (a checking terminal's TOTP secret). */
  async addClient(c: Omit<ClientRecord, 'status' | 'createdAt'>, also?: (tx: Queryable) => Promise<void>): Promise<void> {
    try {
      await this.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO clients (client_id, role, name, operator, suite, public_key, certificate, identity, key_id, encryption_key, encryption_certificate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
          [c.clientId, c.role, c.name, c.operator, c.suite, c.publicKey, c.certificate ?? null, c.identity ?? null, c.keyId, c.encryptionKey ?? null, c.encryptionCertificate ?? null],
        );
        if (c.role === 'terminal') await tx.query('INSERT INTO terminals (client_id, kind, station) VALUES ($1, $2, $3)', [c.clientId, c.kind ?? 'issuing', c.station ?? null]);
        if (also) await also(tx);
      });
    } catch (e) {
      if (e instanceof DatabaseError && e.code === '23505') throw new StoreConflictError(`a client named ${c.clientId} (or with this key) is already registered`, 'client_exists');
      throw e;
    }
  }

  async client(clientId: string, q: Queryable = this.db): Promise<ClientRecord | undefined> {
    const r = (await q.query('SELECT c.*, t.kind, t.station FROM clients c LEFT JOIN terminals t USING (client_id) WHERE c.client_id = $1', [clientId])).rows[0];
    return r ? clientRow(r) : undefined;
  }

  async clients(role?: 'seller' | 'terminal'): Promise<ClientRecord[]> {
    const r = role
      ? await this.db.query('SELECT c.*, t.kind, t.station FROM clients c LEFT JOIN terminals t USING (client_id) WHERE c.role = $1 ORDER BY client_id', [role])
      : await this.db.query('SELECT c.*, t.kind, t.station FROM clients c LEFT JOIN terminals t USING (client_id) ORDER BY client_id');
    return r.rows.map(clientRow);
  }

  async setClientStatus(clientId: string, status: 'active' | 'revoked'): Promise<boolean> {
    return (await this.db.query('UPDATE clients SET status = $2 WHERE client_id = $1', [clientId, status])).rowCount === 1;
  }

  /**
   * Record a request nonce; false when this client used it before (a replay). Nonces older than
   * `forgetBefore` are purged now and then: requests that old are refused as stale anyway.
   */
  async useNonce(clientId: string, nonce: string, forgetBefore: Date): Promise<boolean> {
    const r = await this.db.query('INSERT INTO request_nonces (client_id, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING', [clientId, nonce]);
    if (Math.random() < 0.01) await this.db.query('DELETE FROM request_nonces WHERE seen_at < $1', [forgetBefore]);
    return r.rowCount === 1;
  }

  // -------------------------------------------------------------------------------------------- inventory --

  /** A new service with its classes and numbered seats (coach 01.., seats 001.. per coach). */
  async addService(s: Omit<ServiceRecord, 'serviceId' | 'classes'>, classes: ServiceClassSpec[]): Promise<ServiceRecord> {
    if (!classes.length) throw new StoreConflictError('a service needs at least one class with seats', 'no_classes');
    try {
      const id = await this.db.transaction(async (tx) => {
        const r = await tx.query<{ service_id: number }>(
          `INSERT INTO services (operator, code, service_date, origin, destination, departure, kind) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING service_id`,
          [s.operator, s.code, s.serviceDate, s.origin ?? null, s.destination ?? null, s.departure ?? null, s.kind ?? null],
        );
        const serviceId = num(r.rows[0].service_id);
        let coachBase = 0;
        for (const c of classes) {
          await tx.query(`INSERT INTO service_classes (service_id, class, price, currency, capacity, seats_left) VALUES ($1, $2, $3, $4, $5, $5)`, [serviceId, c.class, c.price, c.currency, c.seats]);
          const size = c.coachSize ?? 100;
          // One statement per class: generate_series numbers the seats in the database.
          await tx.query(
            `INSERT INTO seats (service_id, class, coach, seat)
             SELECT $1, $2, lpad(($3 + (n - 1) / $4 + 1)::text, 2, '0'), lpad(((n - 1) % $4 + 1)::text, 3, '0') FROM generate_series(1, $5::int) AS n`,
            [serviceId, c.class, coachBase, size, c.seats],
          );
          coachBase += Math.ceil(c.seats / size);
        }
        return serviceId;
      });
      return (await this.service(id))!;
    } catch (e) {
      if (e instanceof DatabaseError && e.code === '23505') throw new StoreConflictError(`service ${s.code} on ${s.serviceDate} already exists (or a class is given twice)`, 'service_exists');
      throw e;
    }
  }

  async service(serviceId: number, q: Queryable = this.db): Promise<ServiceRecord | undefined> {
    const r = (await q.query('SELECT * FROM services WHERE service_id = $1', [serviceId])).rows[0];
    if (!r) return undefined;
    const classes = (await q.query('SELECT * FROM service_classes WHERE service_id = $1 ORDER BY class', [serviceId])).rows;
    return {
      serviceId: num(r.service_id),
      operator: String(r.operator),
      code: String(r.code),
      serviceDate: num(r.service_date),
      origin: opt(r.origin as string | null),
      destination: opt(r.destination as string | null),
      departure: optNum(r.departure),
      kind: optNum(r.kind),
      classes: classes.map((c) => ({ class: String(c.class), price: num(c.price), currency: String(c.currency), capacity: num(c.capacity), seatsLeft: num(c.seats_left) })),
    };
  }

  async findService(operator: string, code: string, serviceDate: number): Promise<ServiceRecord | undefined> {
    const r = (await this.db.query<{ service_id: number }>('SELECT service_id FROM services WHERE operator = $1 AND code = $2 AND service_date = $3', [operator, code, serviceDate])).rows[0];
    return r ? this.service(num(r.service_id)) : undefined;
  }

  async services(operator: string, filter: { date?: number; code?: string } = {}): Promise<ServiceRecord[]> {
    const r = await this.db.query<{ service_id: number }>(
      'SELECT service_id FROM services WHERE operator = $1 AND ($2::int IS NULL OR service_date = $2) AND ($3::text IS NULL OR code = $3) ORDER BY service_date, code LIMIT 500',
      [operator, filter.date ?? null, filter.code ?? null],
    );
    const out: ServiceRecord[] = [];
    for (const row of r.rows) out.push((await this.service(num(row.service_id)))!);
    return out;
  }

  /**
   * Take one free seat of `class` for (operator, tid), inside the caller's transaction. The class counter is
   * decremented only while seats are left (`UPDATE … WHERE seats_left >= 1`), and the seat row is locked with
   * SKIP LOCKED, so concurrent bookers never get the same seat and never oversell, on any number of processes.
   */
  async takeSeat(serviceId: number, travelClass: string, operator: string, tid: string, q: Queryable): Promise<SeatTaken> {
    const c = await q.query<{ price: number; currency: string }>(
      'UPDATE service_classes SET seats_left = seats_left - 1 WHERE service_id = $1 AND class = $2 AND seats_left >= 1 RETURNING price, currency',
      [serviceId, travelClass],
    );
    if (c.rowCount !== 1) {
      const exists = await q.query('SELECT 1 FROM service_classes WHERE service_id = $1 AND class = $2', [serviceId, travelClass]);
      if (exists.rowCount === 0) throw new NotFoundError(`service ${serviceId} has no class ${travelClass}`);
      throw new StoreConflictError(`service ${serviceId} class ${travelClass} is sold out`, 'sold_out');
    }
    const s = await q.query<{ coach: string; seat: string }>(
      `UPDATE seats SET operator = $3, tid = $4 WHERE (service_id, coach, seat) = (
         SELECT service_id, coach, seat FROM seats WHERE service_id = $1 AND class = $2 AND tid IS NULL ORDER BY coach, seat LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING coach, seat`,
      [serviceId, travelClass, operator, tid],
    );
    // The counter said a seat was left, so a free row exists; its absence means the two disagree: refuse.
    if (s.rowCount !== 1) throw new StoreConflictError(`service ${serviceId} class ${travelClass}: no free seat row although the counter said so`, 'inventory_mismatch');
    return { serviceId, class: travelClass, coach: String(s.rows[0].coach), seat: String(s.rows[0].seat), price: num(c.rows[0].price), currency: String(c.rows[0].currency) };
  }

  /** Give the seat of (operator, tid) back to its class (cancel, rebook, a card that was full). */
  async freeSeat(operator: string, tid: string, q: Queryable): Promise<boolean> {
    const s = await q.query<{ service_id: number; class: string }>('UPDATE seats SET operator = NULL, tid = NULL WHERE operator = $1 AND tid = $2 RETURNING service_id, class', [operator, tid]);
    if (s.rowCount !== 1) return false;
    await q.query('UPDATE service_classes SET seats_left = seats_left + 1 WHERE service_id = $1 AND class = $2', [s.rows[0].service_id, s.rows[0].class]);
    return true;
  }

  /** Seats sold per class, counted from the seat rows (tests check the counter against it). */
  async seatsSold(serviceId: number): Promise<{ class: string; coach: string; seat: string; tid: string }[]> {
    return (await this.db.query<{ class: string; coach: string; seat: string; tid: string }>('SELECT class, coach, seat, tid FROM seats WHERE service_id = $1 AND tid IS NOT NULL ORDER BY coach, seat', [serviceId])).rows;
  }
}
