// The store on both engines (PGlite, and a PostgreSQL server when ETICKET_TEST_DATABASE_URL is set): migrations
// applied once and checked, TIDs never given twice, seats never sold twice under concurrent transactions,
// receipts and nonces stored once, the embedded store held by one process at a time.

import { cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockHeldError } from '../../sdk/file-lock.js';
import { ENGINES, freshPostgresDatabase, pgliteTemplate, tempDir } from '../../test/helpers/stores.js';
import { DatabaseError, openPglite, openPostgres, type Database } from './database.js';
import { loadMigrations, migrate, MigrationError, MIGRATIONS_DIR, type Migration } from './migrate.js';
import { Store, StoreConflictError } from './store.js';

const ROOT_KEY = { keyId: '00112233445566AA', operator: 'CR', suite: 'rsa' as const, role: 'root' as const, publicKey: new Uint8Array([1, 2, 3]), keyName: 'authority', validFrom: new Date('2026-01-01T00:00:00Z') };

async function sealedTicket(store: Store, tid: string, card = 'AABBCCDDEEFF0011') {
  await store.transaction(async (tx) => {
    expect(await store.claimTid('CR', tid, card, undefined, tx)).toBe(true);
    await store.insertTicket({ operator: 'CR', tid, cardSerial: card, keyId: ROOT_KEY.keyId, face: new Uint8Array([0xa1]), verificationCode: new Uint8Array([0xa2]), sealed: new Uint8Array([0xb1]), serviceDate: 20300115 }, tx);
  });
}

/** A new database of the engine with no migration applied yet (migrate() is the test's to call). */
async function emptyDatabase(engine: 'pglite' | 'postgres'): Promise<{ db: Database; dispose: () => Promise<void> }> {
  if (engine === 'pglite') {
    await pgliteTemplate();
    const dir = tempDir();
    const db = await openPglite(dir, { create: true });
    return { db, dispose: async () => (await db.close().catch(() => undefined), rmSync(dir, { recursive: true, force: true })) };
  }
  const { url, drop } = await freshPostgresDatabase();
  const db = await openPostgres(url);
  return { db, dispose: async () => (await db.close().catch(() => undefined), await drop()) };
}

describe.each(ENGINES)('store on $engine', ({ engine, skip, open }) => {
  let store: Store;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    if (skip) return;
    ({ store, dispose } = await open());
    await store.addAuthorityKey(ROOT_KEY);
    await store.recordCard({ serial: 'AABBCCDDEEFF0011', suite: 'rsa' });
    await store.recordCard({ serial: '1111111111111111', suite: 'rsa' });
  });
  afterAll(async () => {
    await dispose?.();
  });

  it.skipIf(skip)('records every migration once; running them again applies nothing', async () => {
    const rows = (await store.db.query<{ version: number }>('SELECT version FROM eticket_migrations ORDER BY version')).rows.map((r) => Number(r.version));
    expect(rows).toEqual(loadMigrations().map((m) => m.version));
    expect(await migrate(store.db)).toEqual([]);
  });

  it.skipIf(skip)('an up-to-date store is told by reads alone (no transaction, no lock); a new migration file still goes the locked way and is applied', async () => {
    const transactions: number[] = [];
    const counted = new Proxy(store.db, {
      get(target, prop, receiver) {
        if (prop === 'transaction') return (...args: Parameters<typeof target.transaction>) => (transactions.push(1), target.transaction(...args));
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    expect(await migrate(counted)).toEqual([]);
    expect(transactions).toHaveLength(0);
    const dir = mkdtempSync(join(tmpdir(), 'eticket-mig-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      writeFileSync(join(dir, '9001_probe.sql'), 'CREATE TABLE migration_probe (x integer);\n');
      expect(await migrate(counted, loadMigrations(dir))).toEqual([9001]);
      expect(transactions.length).toBeGreaterThan(0);
      expect((await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM migration_probe')).rows[0].n).toBe(0);
    } finally {
      await store.db.query('DROP TABLE IF EXISTS migration_probe');
      await store.db.query('DELETE FROM eticket_migrations WHERE version = 9001');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(skip)('migration 7 on a store with bills: old rows are issuance 1, UNIQUE (operator, tid, kind) is gone, UNIQUE (operator, tid, issuance, kind) holds', async () => {
    const { db, dispose: drop } = await emptyDatabase(engine);
    try {
      const all = await migratedBefore(db, 7);
      // A ticket withdrawn before migration 7: its sale and its refund, written the way migration 3's table took them.
      await db.query(`INSERT INTO tids (operator, tid) VALUES ('CR', 'MIG-1')`);
      await db.query(
        `INSERT INTO tickets (operator, tid, card_serial, key_id, face, verification_code, sealed, service_date, status) VALUES ('CR', 'MIG-1', 'AABBCCDDEEFF0011', $1, $2, $2, $2, 20300115, 'cancelled')`,
        [ROOT_KEY.keyId, new Uint8Array([0xa1])],
      );
      const bill = (id: string, kind: string, issuance?: number) =>
        db.query(
          `INSERT INTO bills (bill_id, operator, tid, kind, card_serial, price, currency, sold_at, key_id, document${issuance === undefined ? '' : ', issuance'}) VALUES ($1, 'CR', 'MIG-1', $2, 'AABBCCDDEEFF0011', 700, 'CNY', now(), $3, '{}'${issuance === undefined ? '' : ', $4'})`,
          issuance === undefined ? [id, kind, ROOT_KEY.keyId] : [id, kind, ROOT_KEY.keyId, issuance],
        );
      await bill('B-SALE-1', 'sale');
      await bill('B-REFUND-1', 'refund');
      const constraints = async () =>
        (await db.query<{ name: string; def: string }>(`SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'bills'::regclass AND contype = 'u' ORDER BY conname`)).rows;
      expect(await constraints()).toEqual([{ name: 'bills_operator_tid_kind_key', def: 'UNIQUE (operator, tid, kind)' }]);

      expect(await migrate(db)).toEqual(all.filter((m) => m.version >= 7).map((m) => m.version));
      const old = await Store.over(db);
      expect(await constraints()).toEqual([{ name: 'bills_operator_tid_issuance_kind_key', def: 'UNIQUE (operator, tid, issuance, kind)' }]);
      expect((await old.ticket('CR', 'MIG-1'))!.issuance).toBe(1);
      expect((await old.bills('CR', 'MIG-1')).map((b) => [b.billId, b.issuance])).toEqual([['B-SALE-1', 1], ['B-REFUND-1', 1]]);
      // A second sale of the TID is refused only within one issuance.
      await bill('B-SALE-2', 'sale', 2);
      const again = await bill('B-SALE-1B', 'sale', 1).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(DatabaseError);
      expect(again).toMatchObject({ code: '23505' });
      expect((await old.billsOf({ operator: 'CR', tid: 'MIG-1', issuance: 2 })).map((b) => b.billId)).toEqual(['B-SALE-2']);
    } finally {
      await drop();
    }
  });

  it.skipIf(skip)('migration 8 on a store with real-name rows: each row gets the issuance whose face carries its reference; keys (operator, tid, issuance); one held record per TID', async () => {
    const { db, dispose: drop } = await emptyDatabase(engine);
    try {
      const all = await migratedBefore(db, 8);
      const ref = (b: number) => new Uint8Array(16).fill(b);
      // HELD-1: held, its ticket's face (issuance 1) carries its reference. GONE-1: withdrawn, then issued again
      // without a holder (issuance 3 now, as migration 5's key allowed): its row belongs to an earlier issuance.
      for (const [tid, face, issuance, state] of [['HELD-1', ref(0x11), 1, 'held'], ['GONE-1', new Uint8Array([0xa1]), 3, 'destroyed']] as const) {
        await db.query(`INSERT INTO tids (operator, tid) VALUES ('CR', $1)`, [tid]);
        await db.query(
          `INSERT INTO tickets (operator, tid, card_serial, key_id, face, verification_code, sealed, service_date, status, issuance) VALUES ('CR', $1, 'AABBCCDDEEFF0011', $2, $3, $3, $3, 20300115, 'sealed', $4)`,
          [tid, ROOT_KEY.keyId, new Uint8Array([0xa1, 0x95, 0x10, ...(state === 'held' ? face : []), 0x00]), issuance],
        );
        await db.query(
          `INSERT INTO realname_tickets (operator, tid, holder_ref, expires_at, reads_max, state, destroyed_at, destroyed_reason) VALUES ('CR', $1, $2, now() + interval '1 day', 3, $3, $4, $5)`,
          [tid, state === 'held' ? face : ref(0x22), state, state === 'held' ? null : new Date(), state === 'held' ? null : 'cancelled'],
        );
      }
      await db.query(`INSERT INTO holder_records (operator, tid, master_key_id, wrapped_key, sealed) VALUES ('CR', 'HELD-1', 'mk', '\\x01', '\\x02')`);

      expect(await migrate(db)).toEqual(all.filter((m) => m.version >= 8).map((m) => m.version));
      const rows = (await db.query<{ tid: string; issuance: number }>('SELECT tid, issuance FROM realname_tickets ORDER BY tid')).rows.map((r) => [r.tid, Number(r.issuance)]);
      expect(rows).toEqual([['GONE-1', 2], ['HELD-1', 1]]);
      expect((await db.query('SELECT issuance FROM holder_records')).rows.map((r) => Number(r.issuance))).toEqual([1]);
      const old = await Store.over(db);
      expect(await old.holders.ticket('CR', 'HELD-1')).toMatchObject({ issuance: 1, state: 'held' });
      expect(await old.holders.record('CR', 'HELD-1')).toMatchObject({ issuance: 1, masterKeyId: 'mk' });
      // GONE-1's current issuance (3) is not real-name; its row stays, destroyed, as the audit of issuance 2.
      expect(await old.holders.ticket('CR', 'GONE-1')).toBeUndefined();
      expect(await old.holders.issuances('CR', 'GONE-1')).toMatchObject([{ issuance: 2, state: 'destroyed', destroyedReason: 'cancelled' }]);
      // A row per issuance; never two held records for one TID.
      const second = (state: string) =>
        db.query(`INSERT INTO realname_tickets (operator, tid, issuance, holder_ref, expires_at, reads_max, state, destroyed_at, destroyed_reason) VALUES ('CR', 'HELD-1', 2, $1, now(), 3, $2, $3, $4)`, [
          ref(0x33),
          state,
          state === 'held' ? null : new Date(),
          state === 'held' ? null : 'cancelled',
        ]);
      const twoHeld = await second('held').catch((e: unknown) => e);
      expect(twoHeld).toBeInstanceOf(DatabaseError);
      expect(twoHeld).toMatchObject({ code: '23505' });
      await second('destroyed');
    } finally {
      await drop();
    }
  });

  it.skipIf(skip)('a cancelled, never-loaded ticket issued again under its TID is the next issuance; a loaded or open one is not replaced', async () => {
    await sealedTicket(store, 'CR-ISS-1');
    expect((await store.ticket('CR', 'CR-ISS-1'))!.issuance).toBe(1);
    const insert = (tid: string, card: string) =>
      store.transaction(async (tx) => {
        expect(await store.claimTid('CR', tid, card, undefined, tx)).toBe(true);
        return store.insertTicket({ operator: 'CR', tid, cardSerial: card, keyId: ROOT_KEY.keyId, face: new Uint8Array([0xa1]), verificationCode: new Uint8Array([0xa2]), sealed: new Uint8Array([0xb2]), serviceDate: 20300115 }, tx);
      });
    // Open (sealed): the same card re-claims its TID, but the row is not replaced.
    expect(await insert('CR-ISS-1', 'AABBCCDDEEFF0011')).toBeUndefined();
    await store.releaseUnloaded('CR', 'CR-ISS-1');
    expect(await insert('CR-ISS-1', '1111111111111111')).toMatchObject({ status: 'sealed', cardSerial: '1111111111111111', issuance: 2 });
    await store.releaseUnloaded('CR', 'CR-ISS-1');
    expect(await insert('CR-ISS-1', 'AABBCCDDEEFF0011')).toMatchObject({ issuance: 3 });
    expect(await store.markLoaded('CR', 'CR-ISS-1', 1)).toBe(true);
    expect(await store.ticket('CR', 'CR-ISS-1')).toMatchObject({ status: 'loaded', issuance: 3 });
  });

  it.skipIf(skip)('bytes go in and come back as they were, alone and in arrays, empty and 0x00-0xFF included (PGlite: the native hex codec)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 5 }), async (one, many) => {
        const r = (await store.db.query<{ one: Uint8Array; many: Uint8Array[]; n: number }>('SELECT $1::bytea AS one, $2::bytea[] AS many, octet_length($1::bytea) AS n', [one, many])).rows[0];
        expect(r.n).toBe(one.length);
        expect(new Uint8Array(r.one)).toEqual(one);
        expect(r.many.map((m) => new Uint8Array(m))).toEqual(many);
      }),
      { numRuns: 60 },
    );
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const back = (await store.db.query<{ hex: string }>("SELECT encode($1::bytea, 'hex') AS hex", [all])).rows[0].hex;
    expect(back).toBe(Buffer.from(all).toString('hex'));
  });

  it.skipIf(skip)('refuses a migration file that changed after it was applied', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eticket-mig-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      writeFileSync(join(dir, '0001_core.sql'), '-- edited\n');
      await expect(migrate(store.db, loadMigrations(dir))).rejects.toThrow(MigrationError);
      await expect(migrate(store.db, loadMigrations(dir))).rejects.toThrow(/migration 1 \(core\) was applied with checksum/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(skip)('migration numbers may have gaps (branches reserve theirs); a store with a migration this code does not know is refused', async () => {
    expect(loadMigrations().map((m) => m.version)).toContain(5);
    await store.db.query("INSERT INTO eticket_migrations (version, name, checksum) VALUES (9999, 'future', 'x')");
    try {
      await expect(migrate(store.db)).rejects.toThrow(/migration\(s\) 9999 that this eticket does not know/);
    } finally {
      await store.db.query('DELETE FROM eticket_migrations WHERE version = 9999');
    }
    const dir = mkdtempSync(join(tmpdir(), 'eticket-mig-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      writeFileSync(join(dir, '0005_again.sql'), '-- a second 0005\n');
      expect(() => loadMigrations(dir)).toThrow(/0005_again|given twice/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(skip)('20 concurrent claims of one TID by two cards: one card gets it, the other is refused', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.transaction((tx) => store.claimTid('CR', 'CR-RACE-1', i % 2 ? 'AABBCCDDEEFF0011' : '1111111111111111', undefined, tx))),
    );
    const owner = (await store.tidRow('CR', 'CR-RACE-1'))!.cardSerial;
    const ownerIndexParity = owner === 'AABBCCDDEEFF0011' ? 1 : 0;
    results.forEach((ok, i) => expect(ok).toBe(i % 2 === ownerIndexParity));
  });

  it.skipIf(skip)('the TID counter gives 50 concurrent transactions 50 distinct numbers', async () => {
    const n = await Promise.all(Array.from({ length: 50 }, () => store.transaction((tx) => store.nextTidNumber('CR', tx))));
    expect(new Set(n).size).toBe(50);
  });

  it.skipIf(skip)('40 concurrent bookers for 10 seats: exactly 10 seats taken, none twice, counter at 0; freeing gives one back', async () => {
    const svc = await store.addService({ operator: 'CR', code: 'G1', serviceDate: 20300115, origin: 'BJS', destination: 'SHH' }, [{ class: '2', seats: 10, price: 55300, currency: 'CNY', coachSize: 4 }]);
    expect(svc.classes[0]).toMatchObject({ capacity: 10, seatsLeft: 10 });
    const outcomes = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => store.transaction((tx) => store.takeSeat(svc.serviceId, '2', 'CR', `CR-SEAT-${i}`, tx))));
    const won = outcomes.filter((o) => o.status === 'fulfilled').map((o) => (o as PromiseFulfilledResult<{ coach: string; seat: string }>).value);
    const lost = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason);
    expect(won).toHaveLength(10);
    expect(new Set(won.map((s) => `${s.coach}/${s.seat}`)).size).toBe(10);
    expect(lost.every((e) => e instanceof StoreConflictError && e.reason === 'sold_out')).toBe(true);
    expect((await store.service(svc.serviceId))!.classes[0].seatsLeft).toBe(0);
    expect(await store.seatsSold(svc.serviceId)).toHaveLength(10);
    const tid = (await store.seatsSold(svc.serviceId))[3].tid;
    expect(await store.transaction((tx) => store.freeSeat('CR', tid, tx))).toBe(true);
    expect((await store.service(svc.serviceId))!.classes[0].seatsLeft).toBe(1);
    const again = await store.transaction((tx) => store.takeSeat(svc.serviceId, '2', 'CR', 'CR-SEAT-again', tx));
    expect((await store.seatsSold(svc.serviceId)).map((s) => s.tid)).toContain('CR-SEAT-again');
    expect(again.price).toBe(55300);
  });

  it.skipIf(skip)('a ticket goes sealed → loaded; the pending list is what waits for its card', async () => {
    await sealedTicket(store, 'CR-T-1');
    await sealedTicket(store, 'CR-T-2');
    expect((await store.pendingFor('AABBCCDDEEFF0011')).map((t) => t.tid)).toEqual(['CR-T-1', 'CR-T-2']);
    expect(await store.markLoaded('CR', 'CR-T-1', 3)).toBe(true);
    expect((await store.pendingFor('AABBCCDDEEFF0011')).map((t) => t.tid)).toEqual(['CR-T-2']);
    expect(await store.ticket('CR', 'CR-T-1')).toMatchObject({ status: 'loaded', sequenceNumber: 3 });
  });

  it.skipIf(skip)('markLoadedMany marks a chunk in one statement: sealed ones and loaded ones (idempotent), never cancelled ones', async () => {
    for (const t of ['CR-M-1', 'CR-M-2', 'CR-M-3', 'CR-M-4']) await sealedTicket(store, t);
    await store.releaseUnloaded('CR', 'CR-M-4');
    expect(await store.markLoaded('CR', 'CR-M-2', 7)).toBe(true);
    const marked = await store.markLoadedMany('CR', [{ tid: 'CR-M-1', sequenceNumber: 5 }, { tid: 'CR-M-2' }, { tid: 'CR-M-3', sequenceNumber: 9 }, { tid: 'CR-M-4', sequenceNumber: 1 }, { tid: 'CR-NONE' }]);
    expect(marked.sort()).toEqual(['CR-M-1', 'CR-M-2', 'CR-M-3']);
    expect(await store.ticket('CR', 'CR-M-1')).toMatchObject({ status: 'loaded', sequenceNumber: 5 });
    expect(await store.ticket('CR', 'CR-M-2')).toMatchObject({ status: 'loaded', sequenceNumber: 7 });
    expect(await store.ticket('CR', 'CR-M-3')).toMatchObject({ status: 'loaded', sequenceNumber: 9 });
    expect(await store.ticket('CR', 'CR-M-4')).toMatchObject({ status: 'cancelled' });
    expect(await store.markLoadedMany('CR', [])).toEqual([]);
  });

  it.skipIf(skip)('a ticket the card never took is released: its TID can then go to another card', async () => {
    await sealedTicket(store, 'CR-FULL-1');
    await store.releaseUnloaded('CR', 'CR-FULL-1');
    expect(await store.ticket('CR', 'CR-FULL-1')).toMatchObject({ status: 'cancelled' });
    await sealedTicket(store, 'CR-FULL-1', '1111111111111111');
    expect(await store.ticket('CR', 'CR-FULL-1')).toMatchObject({ status: 'sealed', cardSerial: '1111111111111111' });
  });

  it.skipIf(skip)('a receipt handed in twice is stored once; a nonce is accepted once', async () => {
    const r = { cardSerial: 'AABBCCDDEEFF0011', operator: 'CR', tid: 'CR-T-1', kind: 'usage' as const, event: 1, counter: 1, mode: 'pki' as const, encoded: new Uint8Array([0xb4, 1, 2]), source: 'test' };
    expect(await Promise.all([store.recordReceipt(r), store.recordReceipt(r)])).toEqual(expect.arrayContaining([true, false]));
    expect(await store.receipts('CR', 'CR-T-1')).toHaveLength(1);
    await store.addClient({ clientId: 'acme', role: 'seller', name: 'Acme', operator: 'CR', suite: 'rsa', publicKey: new Uint8Array([9]), keyId: '0000000000000009' });
    const since = new Date(Date.now() - 600_000);
    expect(await Promise.all([store.useNonce('acme', 'n1', since), store.useNonce('acme', 'n1', since)])).toEqual(expect.arrayContaining([true, false]));
  });

  it.skipIf(skip)('a second current signing key cannot be recorded (two rotations at once)', async () => {
    const k = (id: string) => ({ ...ROOT_KEY, keyId: id, role: 'signing' as const, certificate: new Uint8Array([4]), certifiedBy: ROOT_KEY.keyId, validUntil: new Date('2031-01-01Z'), keyName: id });
    await store.rotateSigningKey(k('0000000000000001'), undefined);
    const both = await Promise.allSettled([store.rotateSigningKey(k('0000000000000002'), '0000000000000001'), store.rotateSigningKey(k('0000000000000003'), '0000000000000001')]);
    expect(both.filter((b) => b.status === 'fulfilled')).toHaveLength(1);
    expect((both.find((b) => b.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(StoreConflictError);
    const current = await store.currentSigningKey('CR');
    expect(['0000000000000002', '0000000000000003']).toContain(current!.keyId);
    expect((await store.authorityKey('0000000000000001'))!.retiredAt).toBeInstanceOf(Date);
  });

  it.skipIf(skip || engine !== 'pglite')('the embedded store analyzes the tables that doubled (PGlite runs no autoanalyze): a request-key lookup then uses its index instead of scanning every TID', async () => {
    const { analyzeGrownTables } = await import('./database.js');
    await analyzeGrownTables(store.db); // what earlier tests left
    const claims = Array.from({ length: 4000 }, (_, i) => ({ tid: `CR-ANALYZE-${i}`, requestKey: `analyze-key-${i}` }));
    await store.transaction((tx) => store.claimNewTids('CR', 'AABBCCDDEEFF0011', claims, tx));
    const plan = async () => (await store.db.query<Record<string, string>>('EXPLAIN SELECT tid, request_key FROM tids WHERE operator = $1 AND (tid = ANY($2::text[]) OR request_key = ANY($3::text[]))', ['CR', [], Array.from({ length: 64 }, (_, i) => `analyze-key-${i * 7}`)])).rows.map((r) => Object.values(r)[0]).join('\n');
    // A chunk's 64 keys. Never analyzed since it grew, the planner takes the table for tiny: every one of the
    // operator's TIDs is read and filtered.
    expect(await plan()).toMatch(/Index Cond: \(operator = 'CR'::text\)$/m);
    expect(await analyzeGrownTables(store.db)).toContain('tids');
    expect(await plan()).toMatch(/Index Cond: \(\(operator = 'CR'::text\) AND \(request_key = ANY/);
    expect(await store.tidsNamed('CR', [], ['analyze-key-7'])).toEqual([{ tid: 'CR-ANALYZE-7', requestKey: 'analyze-key-7' }]);
    // Nothing grew since: nothing analyzed again.
    expect(await analyzeGrownTables(store.db)).toEqual([]);
  });

  it.skipIf(skip || engine !== 'pglite')('an embedded store opened after a table doubled has analyzed it (its size read from its file)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eticket-analyze-'));
    try {
      const own = await Store.open(dir, { create: true });
      await own.recordCard({ serial: 'AABBCCDDEEFF0011', suite: 'rsa' });
      await own.transaction((tx) => own.claimNewTids('CR', 'AABBCCDDEEFF0011', Array.from({ length: 4000 }, (_, i) => ({ tid: `CR-OPEN-${i}` })), tx));
      const tuples = async (s: Store) => Number((await s.db.query<{ n: number }>("SELECT reltuples AS n FROM pg_class WHERE relname = 'tids'")).rows[0].n);
      expect(await tuples(own)).toBeLessThan(0); // never analyzed: PGlite has no autoanalyze
      await own.close();
      const again = await Store.open(dir, {});
      try {
        expect(await tuples(again)).toBe(4000);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(skip || engine !== 'pglite')('the embedded store is one process\'s at a time (a second open is refused, naming the holder) and its owner\'s only (0700)', async () => {
    const dir = (store.db as unknown as { description: string }).description.replace(/\/store$/, '');
    expect(statSync(join(dir, 'store')).mode & 0o777).toBe(0o700);
    const e = await openPglite(dir).catch((x) => x);
    expect(e).toBeInstanceOf(LockHeldError);
    expect((e as LockHeldError).message).toMatch(new RegExp(`the embedded store of .* is in use by process ${process.pid}`));
  });
});

describe('the embedded store\'s buffer pool', () => {
  it('is what the opener asks (a short CLI command: 16MB) and otherwise the data directory\'s own (initdb: 128MB)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eticket-buffers-'));
    try {
      const shared = async (options: { sharedBuffers?: string }) => {
        const db = await openPglite(dir, { create: true, ...options });
        try {
          return (await db.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0].shared_buffers;
        } finally {
          await db.close();
        }
      };
      expect(await shared({ sharedBuffers: '16MB' })).toBe('16MB');
      expect(await shared({})).toBe('128MB');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * `db` migrated up to (not including) `version`, with the root key and one card (AABBCCDDEEFF0011) a ticket needs;
 * every migration known, returned for the rest of the test.
 */
async function migratedBefore(db: Database, version: number): Promise<Migration[]> {
  const all = loadMigrations();
  expect(all.map((m) => m.version)).toContain(version);
  expect(await migrate(db, all.filter((m) => m.version < version))).not.toContain(version);
  await db.query(`INSERT INTO authority_keys (key_id, operator, suite, role, public_key, key_name, valid_from) VALUES ($1, 'CR', 'rsa', 'root', $2, 'authority', now())`, [ROOT_KEY.keyId, ROOT_KEY.publicKey]);
  await db.query(`INSERT INTO cards (serial, suite) VALUES ('AABBCCDDEEFF0011', 'rsa')`);
  return all;
}
