// Back-office figures for `npm run bench`: bookings through the HTTP API with 50 concurrent signed clients
// (bookings/s, median and p99), and issuance through the store (TID, TF_V, seal, bill, LOAD, "loaded"),
// on the embedded store (PGlite) and on a PostgreSQL server (ours from tools/pg-start.sh, or the URL given).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../backoffice/http/app.js';
import { Backoffice } from '../backoffice/service.js';
import { Store } from '../backoffice/store/store.js';
import { BackofficeClient, BackofficeHttpError } from '../host/backoffice-client.js';
import { World } from '../testing/world.js';
import { hex } from '../sdk/bytes.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { keyId } from '../sdk/crypto/suite.js';
import { pglitePrepareTemplate } from '../testing/pglite-template.js';

// The repository root, whether the benchmark runs from source (bench/) or compiled (dist/bench/, npm run bench).
const UP = fileURLToPath(new URL('../', import.meta.url));
const ROOT = basename(UP) === 'dist' ? dirname(UP) : UP;

export interface BookingBench {
  engine: 'pglite' | 'postgres';
  clients: number;
  bookings: number;
  soldOutRefusals: number;
  seconds: number;
  bookingsPerSecond: number;
  medianMs: number;
  p99Ms: number;
}

export interface StoreIssuanceBench {
  engine: 'pglite' | 'postgres';
  tickets: number;
  ticketsPerSecond: number;
  medianMs: number;
  p99Ms: number;
}

export interface BackofficeBench {
  bookings: BookingBench[];
  issuance: StoreIssuanceBench[];
  postgres?: { skipped?: string; source?: string };
}

function pct(samples: number[], q: number): number {
  const s = samples.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}

async function openEngine(engine: 'pglite' | 'postgres', url?: string): Promise<{ store: Store; dispose: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'eticket-bench-bo-'));
  if (engine === 'pglite') {
    process.env.ETICKET_PGLITE_TEMPLATE ??= await pglitePrepareTemplate();
    const store = await Store.open(dir, { create: true });
    return { store, dispose: async () => (await store.close(), rmSync(dir, { recursive: true, force: true })) };
  }
  const pg = (await import('pg')).default;
  const name = `eticket_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(url!);
  u.pathname = `/${name}`;
  const store = await Store.open(dir, { url: u.toString(), poolSize: 20 });
  return {
    store,
    dispose: async () => {
      await store.close();
      const a = new pg.Client({ connectionString: url });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function backoffice(store: Store, w: World): Backoffice {
  const k = w.keys.authorityKey;
  return new Backoffice(store, { operator: 'CR', suite: w.suite, rootPublicKey: k.publicKey, root: () => k, signing: () => k, cardTrust: w.keys.cardTrust, masterKeys: () => [w.masterKey] });
}

/** 50 clients book concurrently through the API until `seats` are gone; the extra attempts are sold-out refusals. */
async function benchBookings(engine: 'pglite' | 'postgres', url: string | undefined, w: World, clients: number, seats: number): Promise<BookingBench> {
  const { store, dispose } = await openEngine(engine, url);
  const app = await buildApp({ bo: backoffice(store, w) }, { log: () => undefined });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const key = RsaPrivateKey.generate(2048);
    await store.addClient({ clientId: 'bench', role: 'seller', name: 'bench', operator: 'CR', suite: 'rsa', publicKey: key.publicKey, certificate: w.keys.ca!.certifyClientKey('bench', 'seller', key.publicKey), keyId: hex(keyId(key.publicKey)) });
    const svc = await store.addService({ operator: 'CR', code: 'BENCH', serviceDate: 20300101 }, [{ class: '2', seats, price: 100, currency: 'CNY' }]);
    const card = (await w.newCard()).credentials;
    // A single-threaded embedded store queues 50 clients behind each other: allow for the wait.
    const client = new BackofficeClient({ url: base, clientId: 'bench', signer: key, timeoutMs: 300_000 });
    const latencies: number[] = [];
    let refused = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (;;) {
          const t0 = performance.now();
          try {
            await client.book({ service: svc.serviceId, class: '2', card });
            latencies.push(performance.now() - t0);
          } catch (e) {
            if (e instanceof BackofficeHttpError && e.status === 409) {
              refused++;
              return;
            }
            throw e;
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    if (latencies.length !== seats) throw new Error(`bench: ${latencies.length} bookings for ${seats} seats`);
    return { engine, clients, bookings: latencies.length, soldOutRefusals: refused, seconds, bookingsPerSecond: latencies.length / seconds, medianMs: pct(latencies, 0.5), p99Ms: pct(latencies, 0.99) };
  } finally {
    await app.close();
    await dispose();
  }
}

/** Issuance through the store, as `eticket issue` does it: record (TID, TF_V, seal, bill), LOAD, mark loaded. */
async function benchStoreIssuance(engine: 'pglite' | 'postgres', url: string | undefined, w: World, n: number): Promise<StoreIssuanceBench> {
  const { store, dispose } = await openEngine(engine, url);
  try {
    const bo = backoffice(store, w);
    const c = await w.newCard({ capacity: 1024 * 1024 });
    const times: number[] = [];
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const o = await bo.issue({ request: { serviceDate: '2030-01-01', train: 'G1', origin: 'BJS', destination: 'SHH', fare: 100, currency: 'CNY' }, card: c.credentials, requestKey: `bench-${i}` });
      const r = await c.issuing.load(o.ticket.sealed);
      await bo.markLoaded(o.ticket.tid, r.sequenceNumber);
      times.push(performance.now() - t0);
    }
    const seconds = (performance.now() - started) / 1000;
    return { engine, tickets: n, ticketsPerSecond: n / seconds, medianMs: pct(times, 0.5), p99Ms: pct(times, 0.99) };
  } finally {
    await dispose();
  }
}

/** A PostgreSQL server for the bench: $ETICKET_BENCH_DATABASE_URL / $ETICKET_TEST_DATABASE_URL, else one we start and stop. */
function postgresServer(): { url?: string; source?: string; skipped?: string; stop: () => void } {
  const given = process.env.ETICKET_BENCH_DATABASE_URL || process.env.ETICKET_TEST_DATABASE_URL;
  if (given) return { url: given, source: 'given', stop: () => undefined };
  const pidfile = join(ROOT, 'build', `bench-pg.${process.pid}.pid`);
  const r = spawnSync(join(ROOT, 'tools', 'pg-start.sh'), [pidfile], { encoding: 'utf8', env: { ...process.env, PGPORT_ETICKET: '55532', PGDATA_ETICKET: join(ROOT, 'build', 'bench-pgdata') } });
  if (r.status !== 0) return { skipped: (r.stderr || 'tools/pg-start.sh failed').trim().split('\n').pop(), stop: () => undefined };
  return { url: r.stdout.trim(), source: 'tools/pg-start.sh', stop: () => void spawnSync(join(ROOT, 'tools', 'pg-stop.sh'), [pidfile]) };
}

export async function benchBackoffice(quick: boolean, progress: (s: string) => void): Promise<BackofficeBench> {
  const w = World.create('rsa', 'CR');
  const out: BackofficeBench = { bookings: [], issuance: [] };
  const pg = postgresServer();
  out.postgres = pg.skipped ? { skipped: pg.skipped } : { source: pg.source };
  try {
    for (const engine of ['pglite', 'postgres'] as const) {
      if (engine === 'postgres' && !pg.url) continue;
      progress(`back office on ${engine}: 50 concurrent bookers`);
      out.bookings.push(await benchBookings(engine, pg.url, w, 50, quick ? 100 : 1000));
      progress(`back office on ${engine}: issuance through the store`);
      out.issuance.push(await benchStoreIssuance(engine, pg.url, w, quick ? 20 : 300));
    }
  } finally {
    pg.stop();
  }
  return out;
}
