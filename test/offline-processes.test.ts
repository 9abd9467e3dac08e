// Exactly-once ingest with real processes (issue 14, "Done when"): one gate journal uploaded by `eticket journal
// upload`, cut by kill -9 mid-upload, then uploaded again twice at once to two `eticket serve` processes on one
// PostgreSQL, one of which is killed mid-upload too: every record is stored once, nothing is kept apart.
// Also `eticket gate` journalling a tap and `eticket journal show` reading it, the CLI reports after `match`.

import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { cli, cliProcess, type CliEnv } from '../host/cli/run-cli.js';
import { terminalConfig } from '../host/cli/cmd-tickets.js';
import { WorkDir } from '../host/cli/workdir.js';
import { DenylistCache } from '../host/denylist.js';
import { GateJournal } from '../host/journal.js';
import { OfflineGate } from '../host/offline-gate.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { Store } from '../backoffice/store/store.js';
import { freshPostgresDatabase, pgliteTemplate, postgresSkipReason } from './helpers/stores.js';

const PASS = 'correct horse battery staple';
const GATE = 'A01-G1';
const DAY = '2030-01-15';
const T0 = Date.UTC(2030, 0, 15, 6) / 1000;

describe.skipIf(postgresSkipReason)('exactly-once ingest with real processes on one PostgreSQL', () => {
  let dir: string;
  let env: CliEnv;
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  const servers: ReturnType<typeof cliProcess>[] = [];
  let taps = 0;

  const serve = async (): Promise<{ url: string; proc: ReturnType<typeof cliProcess> }> => {
    const proc = cliProcess(env, '--database', db.url, '--json', 'serve', '--port', '0', '--match-interval', '0');
    servers.push(proc);
    const url = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const line = proc.output().stdout.split('\n').find((l) => l.includes('"listening"'));
        if (line) {
          clearInterval(t);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      }, 20);
      proc.exited.then((code) => {
        clearInterval(t);
        reject(new Error(`serve exited ${code}: ${proc.output().stderr}`));
      });
    });
    return { url, proc };
  };

  const stored = async () => {
    const store = await Store.open(dir, { url: db.url });
    try {
      const t = await store.db.query<{ seq: number }>('SELECT seq FROM gate_taps WHERE gate_id = $1 ORDER BY seq', [GATE]);
      const q = await store.db.query('SELECT 1 FROM journal_quarantine');
      return { seqs: t.rows.map((r) => Number(r.seq)), quarantined: q.rowCount };
    } finally {
      await store.close();
    }
  };

  beforeAll(async () => {
    await pgliteTemplate();
    db = await freshPostgresDatabase();
    dir = mkdtempSync(join(tmpdir(), 'eticket-offline-cli-'));
    env = { cwd: dir, timeoutMs: 120_000 };
    process.env.ETICKET_CLIENT_PASSPHRASE = 'gate secret';
    const run = async (...args: string[]) => {
      const r = await cli(env, '--database', db.url, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r;
    };
    await run('init');
    await run('terminal', 'add', GATE, '--kind', 'gate', '--station', 'A01', '--out', 'gate.json');
    await run('seller', 'add', 'acme', '--out', 'acme.json');
    writeFileSync(join(dir, 'fares.csv'), 'from,to,fare\nA01,B07,300\nA01,C03,500\nB07,C03,400\n');
    await run('fares', 'load', '--fares', 'fares.csv', '--incomplete-after', '4h');
    const tids: string[] = [];
    for (const img of ['c1.img', 'c2.img']) {
      await run('card', 'create', img);
      await run('card', 'personalize', '--card', img);
      const issued = await run('--json', 'issue', '--card', img, '--service-date', DAY, '--kind', 'metro', '--pricing', 'per-trip', '--max-entries', '255', '--fare', '0', '--currency', 'CNY', '--valid-until', `${DAY}T23:59:59Z`);
      tids.push(String(issued.json()[0].tid));
    }
    // The gate's taps, in process with the working directory's keys: 40 records in its journal.
    const w = WorkDir.open(dir);
    let now = T0;
    const journal = GateJournal.openDir(join(dir, 'journal', GATE));
    const gate = new OfflineGate({ terminal: { ...terminalConfig(w, PASS, { mode: 'sym', station: 'A01', gateId: GATE }), clock: () => now }, journal, denylist: new DenylistCache({ operator: w.config.operator, suite: w.config.suite, roots: [w.authorityPublicKey] }) });
    for (let i = 0; i < 40; i++) {
      now += 600;
      const r = await gate.tap(new CardSession(new EmulatorTransport(EticketCard.open(join(dir, `c${(i % 2) + 1}.img`)))), Math.floor(i / 2) % 2 ? 'exit' : 'entry');
      expect(r.decision.pass, r.decision.message).toBe(true);
      taps++;
    }
    await journal.close();
    expect(tids).toHaveLength(2);
  }, 600_000);

  afterAll(async () => {
    for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGTERM');
    await Promise.all(servers.map((s) => s.exited));
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('cut mid-upload by kill -9, then the same journal twice at once to two services, one killed mid-upload: each record stored once', async () => {
    const [s1, s2] = [await serve(), await serve()];
    const jdir = join(dir, 'journal', GATE);
    const twin = join(dir, 'journal-copy');
    cpSync(jdir, twin, { recursive: true }); // the same journal, a second time
    rmSync(join(twin, 'journal.lock'), { force: true });

    // 1. kill -9 the uploader once the service has acknowledged a few one-record batches.
    const up = cliProcess(env, 'journal', 'upload', '--credential', 'gate.json', '--backoffice', s1.url, '--batch', '1');
    const acked = () => (existsSync(join(jdir, 'journal.json')) ? (JSON.parse(readFileSync(join(jdir, 'journal.json'), 'utf8')) as { gates: Record<string, { acked: number }> }).gates[GATE]?.acked ?? 0 : 0);
    for (let i = 0; i < 6000 && acked() < 3 && up.child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
    up.child.kill('SIGKILL');
    expect(await up.exited).toBeNull(); // killed, not finished
    const cut = acked();
    expect(cut).toBeGreaterThanOrEqual(3);
    expect(cut).toBeLessThan(taps);
    const partial = await stored();
    expect(partial.seqs.length).toBeGreaterThanOrEqual(cut); // what it stored before the kill (at least what was acknowledged)

    // 2. The rest, and the whole copy, at once to the two services; service 2 is killed mid-way.
    const a = cli(env, '--json', 'journal', 'upload', '--credential', 'gate.json', '--backoffice', s1.url, '--batch', '2');
    const b = cliProcess(env, '--json', 'journal', 'upload', '--credential', 'gate.json', '--backoffice', s2.url, '--journal', twin, '--batch', '1');
    for (let i = 0; i < 6000 && !existsSync(join(twin, 'journal.json')) && b.child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
    s2.proc.child.kill('SIGKILL');
    const [ra, codeB] = await Promise.all([a, b.exited]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(codeB, 'the upload to the killed service fails').toBe(3);
    // 3. The copy again, to the service still up: what remained of it goes, all of it already stored.
    const rb = await cli(env, '--json', 'journal', 'upload', '--credential', 'gate.json', '--backoffice', s1.url, '--journal', twin);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.json()[0]).toMatchObject({ stored: 0, quarantined: 0, acknowledged: taps });

    const final = await stored();
    expect(final.seqs).toEqual(Array.from({ length: taps }, (_, i) => i + 1));
    expect(final.quarantined).toBe(0);
  }, 600_000);

  it('eticket gate journals its tap, journal show reads it; match and the reports see the trips', async () => {
    const g = await cli(env, '--database', db.url, '--json', 'gate', '--card', 'c1.img', '--mode', 'sym', '--station', 'B07', '--gate-id', 'B07-G2', '--direction', 'entry', '--time', `${DAY}T22:00:00Z`);
    expect(g.code, g.stderr).toBe(0);
    expect(g.json()[0]).toMatchObject({ pass: true, gate: 'B07-G2', seq: 1, denylistVersion: 0 });
    const show = await cli(env, '--json', 'journal', 'show', '--gate-id', 'B07-G2');
    expect(show.code, show.stderr).toBe(0);
    expect((show.json()[0].records as unknown[])[0]).toMatchObject({ gate: 'B07-G2', seq: 1, station: 'B07', direction: 'entry', pass: true, counter: 20, denylistVersion: 0 });
    const m = await cli(env, '--database', db.url, '--json', 'match');
    expect(m.code, m.stderr).toBe(0);
    expect(m.json()[0]).toMatchObject({ tickets: 2, taps: 40, anomalies: [] });
    const trips = await cli(env, '--database', db.url, '--json', 'report', 'trips');
    expect(trips.code, trips.stderr).toBe(0);
    // 40 taps at A01, entries and exits alternating per card: 20 trips A01→A01 (no fare pair: the maximum fare).
    expect(trips.json()[0]).toMatchObject({ totals: [{ day: DAY, seller: '(operator)', currency: 'CNY', trips: 20, complete: 20, revenue: 20 * 500 }] });
    const clearing = await cli(env, '--database', db.url, 'report', 'clearing', '--format', 'csv');
    expect(clearing.code, clearing.stderr).toBe(0);
    expect(clearing.stdout.split('\n')[0]).toBe('seller,day,currency,sold,sales_gross,refunded,refunds,used,trips,incomplete,trip_revenue,net');
    // Sold today (the bills' day), travelled on the pass's day: two rows of the same seller.
    expect(clearing.stdout).toContain(`(operator),${new Date().toISOString().slice(0, 10)},CNY,2,0,0,0,0,0,0,0,0`);
    expect(clearing.stdout).toContain(`(operator),${DAY},CNY,0,0,0,0,2,20,0,10000,10000`);
  }, 600_000);
});
