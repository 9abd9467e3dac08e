// Concurrency with real processes (issue 12, "Done when"): two `eticket issue` batches on one working
// directory, three on one card image, kill -9 in the middle of a batch and a re-run, and two `eticket serve`
// processes on one PostgreSQL with 50 concurrent bookers for the last 10 seats. Every ticket issued once,
// nothing lost, no image corrupt, the loser told clearly.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../backoffice/store/store.js';
import { BackofficeClient, BackofficeHttpError } from '../host/backoffice-client.js';
import { cli, cliProcess, type CliEnv } from '../host/cli/run-cli.js';
import { fromHex } from '../sdk/bytes.js';
import { FileLock } from '../sdk/file-lock.js';
import type { CardCredentials } from '../sdk/roles/trust.js';
import { freshPostgresDatabase, pgliteTemplate, postgresSkipReason } from './helpers/stores.js';

const DATE = '2030-02-01';

function batch(prefix: string, n: number, withTid = false): string {
  const rows = Array.from({ length: n }, (_, i) => `${withTid ? `${prefix}-${i + 1}` : ''},${DATE},${prefix},BJS,SHH,${100 + i},CNY`);
  return ['tid,serviceDate,train,origin,destination,fare,currency', ...rows].join('\n') + '\n';
}

async function ticketsOnCard(env: CliEnv, image: string): Promise<string[]> {
  const r = await cli(env, '--json', 'tickets', '--card', image);
  expect(r.code, r.stderr).toBe(0);
  return (r.json()[0].tickets as { face: { tid: string } }[]).map((t) => t.face.tid);
}

/** The store's tickets of a working directory, read after every eticket process has exited. */
async function storeTickets(dir: string, url?: string): Promise<{ tid: string; card: string; status: string }[]> {
  const store = await Store.open(dir, { url, waitMs: 10_000 });
  try {
    return (await store.allTickets()).map((t) => ({ tid: t.tid, card: t.cardSerial, status: t.status }));
  } finally {
    await store.close();
  }
}

describe('eticket processes on one working directory and one card image', () => {
  let dir: string;
  let env: CliEnv;

  beforeAll(async () => {
    await pgliteTemplate();
    dir = mkdtempSync(join(tmpdir(), 'eticket-conc-'));
    env = { cwd: dir, timeoutMs: 120_000 };
    expect((await cli(env, 'init')).code).toBe(0);
    for (const img of ['a.img', 'b.img', 'c.img', 'k.img']) {
      expect((await cli(env, 'card', 'create', img)).code).toBe(0);
      const p = await cli(env, 'card', 'personalize', '--card', img);
      expect(p.code, p.stderr).toBe(0);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('two batches at once on one working directory (two cards): every ticket issued once, to one card, nothing lost', async () => {
    writeFileSync(join(dir, 'one.csv'), batch('ONE', 20));
    writeFileSync(join(dir, 'two.csv'), batch('TWO', 20));
    const [one, two] = await Promise.all([cli(env, '--json', 'issue', '--card', 'a.img', '--from', 'one.csv'), cli(env, '--json', 'issue', '--card', 'b.img', '--from', 'two.csv')]);
    expect([one.code, two.code], one.stderr + two.stderr).toEqual([0, 0]);
    const onA = await ticketsOnCard(env, 'a.img');
    const onB = await ticketsOnCard(env, 'b.img');
    expect(onA).toHaveLength(20);
    expect(onB).toHaveLength(20);
    expect(new Set([...onA, ...onB]).size).toBe(40);
    const stored = await storeTickets(dir);
    expect(stored.filter((t) => onA.includes(t.tid) || onB.includes(t.tid)).every((t) => t.status === 'loaded')).toBe(true);
    expect(new Set(stored.map((t) => t.tid)).size).toBe(stored.length);
  });

  it('three batches at once on one card image: one runs, the others are told which image and which process, and nothing is half written', async () => {
    for (const p of ['X', 'Y', 'Z']) writeFileSync(join(dir, `${p}.csv`), batch(p, 8, true));
    const runs = await Promise.all(['X', 'Y', 'Z'].map((p) => cli(env, '--json', 'issue', '--card', 'c.img', '--from', `${p}.csv`)));
    const winners = runs.filter((r) => r.code === 0);
    const losers = runs.filter((r) => r.code !== 0);
    expect(winners.length).toBeGreaterThanOrEqual(1);
    for (const l of losers) {
      expect(l.code, l.stderr).toBe(7);
      expect(l.stderr.trim().split('\n')).toHaveLength(1);
      expect(l.stderr).toMatch(/card image \S*c\.img is in use by process \d+ \(.*issue.*\).*nothing was changed/);
    }
    // Re-running the losers finishes their batches; every ticket is on the card once, the image is sound.
    for (const p of ['X', 'Y', 'Z']) {
      const r = await cli(env, '--json', 'issue', '--card', 'c.img', '--from', `${p}.csv`);
      expect(r.code, r.stderr).toBe(0);
    }
    const on = await ticketsOnCard(env, 'c.img');
    expect(on.sort()).toEqual(['X', 'Y', 'Z'].flatMap((p) => Array.from({ length: 8 }, (_, i) => `${p}-${i + 1}`)).sort());
    const info = await cli(env, '--json', 'card', 'info', '--card', 'c.img');
    expect(info.json()[0]).toMatchObject({ lifecycle: 'OPERATIONAL', capacity: { tickets: 24 } });
  });

  it('an image held by another process: issue exits 7 naming that process, before touching the store or the card', async () => {
    writeFileSync(join(dir, 'held.csv'), batch('HELD', 2));
    const before = await ticketsOnCard(env, 'c.img');
    const lock = FileLock.tryAcquire(`${join(dir, 'c.img')}.lock`, 'card image c.img', 'a test holding the image');
    try {
      const r = await cli(env, 'issue', '--card', 'c.img', '--from', 'held.csv');
      expect(r.code).toBe(7);
      expect(r.stderr).toMatch(new RegExp(`in use by process ${process.pid} \\(a test holding the image\\)`));
    } finally {
      lock.release();
    }
    expect(await ticketsOnCard(env, 'c.img')).toEqual(before);
  });

  it('kill -9 in the middle of a batch, at three points: each re-run finishes it with nothing duplicated', async () => {
    writeFileSync(join(dir, 'kill.csv'), batch('KILL', 30));
    for (const after of [2, 9, 17]) {
      await killAfterResults(cliProcess({ ...env }, '--json', 'issue', '--card', 'k.img', '--from', 'kill.csv'), after);
      const rerun = await cli(env, '--json', 'issue', '--card', 'k.img', '--from', 'kill.csv');
      expect(rerun.code, rerun.stderr).toBe(0);
      const summary = rerun.json().find((j) => j.summary) as { loaded: number; alreadyOnCard: number; failed: number };
      expect(summary.loaded + summary.alreadyOnCard).toBe(30);
      expect(summary.failed).toBe(0);
      const on = await ticketsOnCard(env, 'k.img');
      expect(on).toHaveLength(30);
      expect(new Set(on).size).toBe(30);
    }
    const stored = (await storeTickets(dir)).filter((t) => t.tid.startsWith('CR-') && t.status !== 'cancelled');
    const onK = new Set(await ticketsOnCard(env, 'k.img'));
    expect(stored.filter((t) => onK.has(t.tid))).toHaveLength(30);
    // No ticket was sealed for the batch beyond the 30 on the card (a duplicate would be a 31st).
    const cardSerial = ((await cli(env, '--json', 'card', 'info', '--card', 'k.img')).json()[0] as { serial: string }).serial;
    expect(stored.filter((t) => t.card === cardSerial)).toHaveLength(30);
    // The loaded marks a kill cut off (they go to the store a chunk at a time) were made by the re-runs: the store
    // calls every ticket on the card loaded, none is left "sealed".
    expect(stored.filter((t) => t.card === cardSerial).map((t) => t.status)).toEqual(Array(30).fill('loaded'));
  });

  it('kill -9 before any result (the back-office thread starting, or opening the store): a re-run with --wait 0 is not held by the dead process and issues every row once', async () => {
    writeFileSync(join(dir, 'early.csv'), batch('EARLY', 12));
    expect((await cli(env, 'card', 'create', 'e.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'e.img')).code).toBe(0);
    const lockFile = join(dir, 'store.lock');
    // Kill points: at once (the thread prestarted, nothing opened), and as soon as the process holds the store.
    for (const when of ['start', 'store locked'] as const) {
      const killed = cliProcess({ ...env }, '--json', 'issue', '--card', 'e.img', '--from', 'early.csv');
      await killWhen(killed, () => when === 'start' || existsSync(lockFile));
      const rerun = await cli(env, '--wait', '0', '--json', 'issue', '--card', 'e.img', '--from', 'early.csv');
      expect(rerun.code, `${when}: ${rerun.stderr}`).toBe(0);
      const lines = rerun.json().filter((j) => !j.summary) as { line: number; status: string; tid: string }[];
      expect(lines.map((l) => l.line)).toEqual(Array.from({ length: 12 }, (_, i) => i + 2));
      expect(lines.every((l) => l.status === 'loaded' || l.status === 'already_on_card')).toBe(true);
    }
    const on = await ticketsOnCard(env, 'e.img');
    expect(on).toHaveLength(12);
    expect(new Set(on).size).toBe(12);
  });

  it('kill -9 inside a chunk (rows are issued 64 to a transaction, then loaded): each re-run issues every row of a 150-row batch exactly once', async () => {
    // 150 rows = chunks of 64, 64 and 22; every other row names its tid, the others are keyed by the batch name.
    const rows = Array.from({ length: 150 }, (_, i) => `${i % 2 ? `CH-${i + 1}` : ''},${DATE},CH${i % 7},BJS,SHH,${100 + i},CNY`);
    writeFileSync(join(dir, 'chunks.csv'), ['tid,serviceDate,train,origin,destination,fare,currency', ...rows].join('\n') + '\n');
    expect((await cli(env, 'card', 'create', 'm.img', '--capacity', '200000')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'm.img')).code).toBe(0);
    // Kill points: inside the first chunk, right after it (the second chunk's transaction or first LOADs), inside the third.
    for (const after of [5, 64, 131]) {
      const killed = cliProcess({ ...env }, '--json', 'issue', '--card', 'm.img', '--from', 'chunks.csv');
      await killAfterResults(killed, after);
      // A row is printed "loaded" only after the card's barrier for its LOAD (group commit): every one is on the card.
      const printed = killed.output().stdout.split('\n').filter((l) => l.includes('"status":"loaded"')).map((l) => (JSON.parse(l) as { tid: string }).tid);
      expect(await ticketsOnCard(env, 'm.img')).toEqual(expect.arrayContaining(printed));
      const rerun = await cli(env, '--json', 'issue', '--card', 'm.img', '--from', 'chunks.csv');
      expect(rerun.code, rerun.stderr).toBe(0);
      const lines = rerun.json().filter((j) => !j.summary) as { line: number; status: string; tid: string }[];
      // One result a row, in file order.
      expect(lines.map((l) => l.line)).toEqual(Array.from({ length: 150 }, (_, i) => i + 2));
      expect(lines.every((l) => l.status === 'loaded' || l.status === 'already_on_card')).toBe(true);
      const on = await ticketsOnCard(env, 'm.img');
      expect(on).toHaveLength(150);
      expect(new Set(on).size).toBe(150);
      expect(new Set(lines.map((l) => l.tid))).toEqual(new Set(on));
    }
    const cardSerial = ((await cli(env, '--json', 'card', 'info', '--card', 'm.img')).json()[0] as { serial: string }).serial;
    const stored = (await storeTickets(dir)).filter((t) => t.card === cardSerial);
    // Nothing sealed twice for a row (a duplicate would be a 151st ticket for this card), every one marked loaded.
    expect(stored.filter((t) => t.status !== 'cancelled')).toHaveLength(150);
    expect(stored.map((t) => t.status)).toEqual(Array(150).fill('loaded'));
  });
});

/** SIGKILL a running `--json issue` once it has printed `results` result lines (or let it end first), then wait for it. */
function killAfterResults(p: ReturnType<typeof cliProcess>, results: number): Promise<void> {
  return killWhen(p, () => p.output().stdout.split('\n').filter((l) => l.includes('"status"')).length >= results);
}

/** SIGKILL a running CLI process as soon as `now()` says so (checked every 2 ms), or let it end first; then wait for it. */
async function killWhen(p: ReturnType<typeof cliProcess>, now: () => boolean): Promise<void> {
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (now()) {
        clearInterval(check);
        p.child.kill('SIGKILL');
        resolve();
      }
    }, 2);
    p.exited.then(() => {
      clearInterval(check);
      resolve();
    });
  });
  await p.exited;
}

describe.skipIf(postgresSkipReason)('two eticket serve processes on one PostgreSQL', () => {
  let dir: string;
  let env: CliEnv;
  let db: { url: string; drop: () => Promise<void> };
  const servers: ReturnType<typeof cliProcess>[] = [];

  beforeAll(async () => {
    db = await freshPostgresDatabase();
    dir = mkdtempSync(join(tmpdir(), 'eticket-serve-'));
    env = { cwd: dir, timeoutMs: 120_000 };
    expect((await cli(env, '--database', db.url, 'init')).code).toBe(0);
    expect((await cli(env, 'card', 'create', 'card.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'card.img')).code).toBe(0);
  });
  afterAll(async () => {
    for (const s of servers) s.child.kill('SIGTERM');
    await Promise.all(servers.map((s) => s.exited));
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it('two batches at once on one PostgreSQL store run side by side and never share a TID', async () => {
    expect((await cli(env, 'card', 'create', 'p.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'p.img')).code).toBe(0);
    writeFileSync(join(dir, 'p1.csv'), batch('P1', 15));
    writeFileSync(join(dir, 'p2.csv'), batch('P2', 15));
    const [a, b] = await Promise.all([cli(env, '--database', db.url, '--json', 'issue', '--card', 'card.img', '--from', 'p1.csv'), cli(env, '--database', db.url, '--json', 'issue', '--card', 'p.img', '--from', 'p2.csv')]);
    expect([a.code, b.code], a.stderr + b.stderr).toEqual([0, 0]);
    const tids = [...a.json(), ...b.json()].filter((j) => j.status === 'loaded').map((j) => j.tid);
    expect(tids).toHaveLength(30);
    expect(new Set(tids).size).toBe(30);
    expect(await storeTickets(dir, db.url)).toHaveLength(30);
  });

  it('50 concurrent bookers for the last 10 seats: exactly 10 bookings, no seat twice, the others told sold out', async () => {
    // The seller's own passphrase, which seals its key in acme.json (the spawned CLI inherits it).
    process.env.ETICKET_CLIENT_PASSPHRASE = 'seller secret';
    const added = await cli(env, '--database', db.url, 'seller', 'add', 'acme', '--out', 'acme.json');
    expect(added.code, added.stderr).toBe(0);
    const svc = await cli(env, '--database', db.url, '--json', 'service', 'add', '--train', 'G9', '--date', DATE, '--class', '2:12:55300');
    const serviceId = (svc.json()[0] as { service: { serviceId: number } }).service.serviceId;
    const info = (await cli(env, '--json', 'card', 'info', '--card', 'card.img')).json()[0] as { credentials: Record<string, string> };
    const c = info.credentials;
    const card: CardCredentials = { suite: 'rsa', serial: fromHex(c.serial), encryptionCertificate: fromHex(c.encryptionCertificate), signingCertificate: fromHex(c.signingCertificate) };

    for (let i = 0; i < 2; i++) servers.push(cliProcess(env, '--database', db.url, '--json', 'serve', '--port', '0'));
    const urls = await Promise.all(
      servers.map(
        (s) =>
          new Promise<string>((resolve, reject) => {
            const t = setInterval(() => {
              const line = s.output().stdout.split('\n').find((l) => l.includes('"listening"'));
              if (line) {
                clearInterval(t);
                resolve((JSON.parse(line) as { url: string }).url);
              }
            }, 20);
            s.exited.then((code) => reject(new Error(`serve exited ${code}: ${s.output().stderr}`)));
          }),
      ),
    );
    expect(new Set(urls).size).toBe(2);
    const clients = urls.map((u) => BackofficeClient.fromCredential(u, join(dir, 'acme.json'), 'seller secret'));
    // Two seats go first, so 10 are left for the 50.
    await clients[0].book({ service: serviceId, class: '2', card });
    await clients[1].book({ service: serviceId, class: '2', card });
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => clients[i % 2].book({ service: serviceId, class: '2', card, requestId: `booker-${i}` })));
    const booked = outcomes.filter((o) => o.status === 'fulfilled').map((o) => (o as PromiseFulfilledResult<{ tid: string; coach?: string; seat?: string }>).value);
    const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason as BackofficeHttpError);
    expect(booked).toHaveLength(10);
    expect(new Set(booked.map((b) => `${b.coach}/${b.seat}`)).size).toBe(10);
    expect(new Set(booked.map((b) => b.tid)).size).toBe(10);
    expect(refused.every((e) => e instanceof BackofficeHttpError && e.status === 409 && e.error === 'sold_out')).toBe(true);
    const listed = await clients[1].services({ train: 'G9' });
    expect(listed[0].classes[0].seatsLeft).toBe(0);
    const store = await Store.open(dir, { url: db.url });
    try {
      const sold = await store.seatsSold(serviceId);
      expect(sold).toHaveLength(12);
      expect(new Set(sold.map((s) => s.tid)).size).toBe(12);
    } finally {
      await store.close();
    }
  });
});
