// Gates that work offline, end to end on both store engines (issue 14, "Done when"): the rollback attack (a card
// image copied back before an entry) and a card image copied and used in parallel are found from the uploaded
// journals, the card goes on the denylist, the next denylist reaches every gate and the card is refused offline.
// Also: a stalled back office never holds a tap; a batch uploaded twice, partly or out of order is stored once;
// a forged or altered record is kept apart with its reason.

import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { BackofficeClient } from '../host/backoffice-client.js';
import { JournalUploader } from '../host/journal-uploader.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { hex } from '../sdk/bytes.js';
import { encodeTapRecord, signCheckpoint, checkpointJson } from '../sdk/gate-journal.js';
import { toServiceDate } from '../sdk/fields.js';
import { setTripSetting, TAP_COLUMNS, TRIP_SETTINGS, TripMatcher, tapFromRow, type TapRow } from '../backoffice/trips.js';
import type { Queryable } from '../backoffice/store/database.js';
import { TestOffice, type TestGate } from '../testing/office.js';
import { World } from '../testing/world.js';
import { ENGINES, tempDir } from './helpers/stores.js';

const NETWORK = {
  basis: 'station' as const,
  currency: 'CNY',
  fares: [
    { from: 'A01', to: 'B07', fare: 300 },
    { from: 'A01', to: 'C03', fare: 500 },
    { from: 'B07', to: 'C03', fare: 400 },
  ],
  links: [
    { from: 'A01', to: 'B07', seconds: 900 },
    { from: 'B07', to: 'C03', seconds: 600 },
  ],
};

const world = World.create('rsa');
const dir = mkdtempSync(join(tmpdir(), 'eticket-offline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A card on an image file, with a metro pass sold by `seller` and loaded through the real LOAD. */
async function cardWithPass(office: TestOffice, image: string, seller = 'acme') {
  const c = await world.newCard({ backend: image });
  const day = toServiceDate(new Date(world.now * 1000));
  const sold = await office.bo.issuePass({ card: c.credentials, sellerId: seller, firstDay: day, days: 1 });
  await c.issuing.load(sold.ticket.sealed);
  await office.bo.markLoaded(sold.ticket.tid);
  return { ...c, tid: sold.ticket.tid, serial: hex(c.credentials.serial) };
}

/** A session on the card image as it is on disk now (the emulator reads the file again). */
/**
 * Copy a card's NVM as it is: the image and its journal (an image file keeps its journal records until a
 * checkpoint, card/nvm.ts). A restored image beside a later journal would have that journal replayed onto it.
 */
function copyCardImage(from: string, to: string): void {
  copyFileSync(from, to);
  if (existsSync(`${from}.journal`)) copyFileSync(`${from}.journal`, `${to}.journal`);
  else rmSync(`${to}.journal`, { force: true });
}

function sessionOn(image: string): CardSession {
  return new CardSession(new EmulatorTransport(EticketCard.open(image)));
}

async function uploadAll(gates: TestGate[]) {
  for (const g of gates) await g.uploader.uploadAll();
}

describe.each(ENGINES)('offline gates on $engine', (engine) => {
  let office: TestOffice;
  let dispose: () => Promise<void>;
  let A: TestGate, B: TestGate, C: TestGate;
  let acme: BackofficeClient;

  beforeAll(async () => {
    if (engine.skip) return;
    const s = await engine.open();
    dispose = s.dispose;
    world.now = Math.floor(Date.UTC(2030, 0, 15, 7) / 1000);
    office = new TestOffice(world, s.store, tempDir('eticket-office-'));
    await office.listen();
    acme = office.client('acme', await office.register('acme', 'seller'));
    await office.loadNetwork(NETWORK);
    A = await office.addGate('A01-G1', 'A01');
    B = await office.addGate('B07-G1', 'B07');
    C = await office.addGate('C03-G1', 'C03');
  }, 120_000);

  afterAll(async () => {
    await office?.close();
    await dispose?.();
  });

  // A test that took the office offline brings it back for the next one, on the same address.
  afterEach(async () => {
    if (office) await office.listen(Number(new URL(office.url).port));
  });

  it.skipIf(engine.skip)('rollback: an image copied back before an entry enters twice; the back office finds it, the denylist reaches every gate, the card is refused offline', async () => {
    const image = join(dir, `${engine.engine}-rollback.img`);
    const c = await cardWithPass(office, image);
    copyCardImage(image, `${image}.copy`); // the copy, made before the entry

    world.now += 60;
    const first = await A.gate.tap(sessionOn(image), 'entry');
    expect(first.decision.pass).toBe(true);
    expect(first.record).toMatchObject({ seq: 1, pass: true, tid: c.tid, counter: 0, denylistVersion: 0 });

    copyCardImage(`${image}.copy`, image); // restore: the card's memory is back before the entry
    world.now += 120; // two minutes later at C03, which is 25 minutes from A01
    const second = await C.gate.tap(sessionOn(image), 'entry');
    expect(second.decision.pass, 'offline, the restored card passes: only the back office can see it').toBe(true);
    expect(second.receipt?.counter).toBe(first.receipt?.counter);

    await uploadAll([A, C]);
    const m = await office.bo.matcher(() => world.now * 1000).matchPending();
    const kinds = m!.anomalies.filter((a) => a.card === c.serial).map((a) => a.kind).sort();
    expect(kinds).toEqual(['counter_conflict', 'double_entry', 'impossible_travel']);
    expect(m!.denylisted).toEqual([c.serial]);
    const version = m!.denylistVersion!;
    expect(version).toBeGreaterThan(0);

    // The next denylist reaches every gate (a delta from what each holds)...
    for (const g of [A, B, C]) {
      await g.uploader.syncDenylist();
      expect(g.denylist.version, g.id).toBe(version);
      expect(g.denylist.list()).toContain(c.serial);
    }
    // ...and with the back office gone, the card is refused offline, the refusal journalled with that version.
    await office.stopServing();
    world.now += 60;
    const refused = await B.gate.tap(sessionOn(image), 'entry');
    expect(refused.decision).toMatchObject({ pass: false, reason: 'denylisted' });
    expect(refused.record).toMatchObject({ pass: false, reason: 'denylisted', tid: c.tid, denylistVersion: version });
    expect(refused.receipt, 'nothing was written to the card').toBeUndefined();
  });

  it.skipIf(engine.skip)('clone: an image copied to a second card used in parallel is found and both copies are refused', async () => {
    const image = join(dir, `${engine.engine}-clone.img`);
    const c = await cardWithPass(office, image);
    copyCardImage(image, `${image}.twin`);
    world.now += 3600;
    expect((await A.gate.tap(sessionOn(image), 'entry')).decision.pass).toBe(true);
    world.now += 30;
    expect((await C.gate.tap(sessionOn(`${image}.twin`), 'entry')).decision.pass).toBe(true);
    world.now += 900;
    expect((await B.gate.tap(sessionOn(image), 'exit')).decision.pass).toBe(true);
    world.now += 400;
    expect((await B.gate.tap(sessionOn(`${image}.twin`), 'exit')).decision.pass).toBe(true);

    await uploadAll([C, B, A]); // in any order
    const m = await office.bo.matcher(() => world.now * 1000).matchPending();
    expect(new Set(m!.anomalies.filter((a) => a.card === c.serial).map((a) => a.kind))).toEqual(new Set(['counter_conflict', 'double_entry', 'impossible_travel']));
    expect(m!.denylisted).toEqual([c.serial]);
    for (const g of [A, B, C]) await g.uploader.syncDenylist();
    await office.stopServing();
    world.now += 3600;
    for (const [g, img] of [[A, image], [C, `${image}.twin`]] as const) {
      const r = await g.gate.tap(sessionOn(img), 'entry');
      expect(r.decision.reason, `${g.id} ${img}`).toBe('denylisted');
    }
  });

  it.skipIf(engine.skip)('a stalled back office never holds a tap: taps pass and are journalled while an upload hangs', async () => {
    // A "service" that accepts connections and never answers.
    const held: import('node:net').Socket[] = [];
    const stall: Server = createServer((s) => held.push(s));
    await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
    const port = (stall.address() as { port: number }).port;
    const gate = await office.addGate('B07-G9', 'B07');
    const stalled = new JournalUploader(gate.journal, [{ gateId: gate.id, client: new BackofficeClient({ url: `http://127.0.0.1:${port}`, clientId: gate.id, signer: gate.signer, timeoutMs: 600_000 }), signer: gate.signer }], gate.denylist, { intervalMs: 1 });
    await Promise.all([0, 1, 2].map((i) => cardWithPass(office, join(dir, `${engine.engine}-stall-${i}.img`))));
    world.now += 7200;
    expect((await gate.gate.tap(sessionOn(join(dir, `${engine.engine}-stall-0.img`)), 'entry')).decision.pass).toBe(true);
    stalled.start();
    // Wait until the upload and the denylist fetch are both in flight (the service holds them, never answers).
    for (let i = 0; i < 500 && stalled.stats.inFlight < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(stalled.stats.inFlight).toBe(2);
    const taps = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) {
        world.now += 30;
        const img = join(dir, `${engine.engine}-stall-${i}.img`);
        taps.push(await gate.gate.tap(sessionOn(img), (round + (i === 0 ? 1 : 0)) % 2 ? 'exit' : 'entry'));
      }
    }
    expect(taps.every((t) => t.decision.pass && t.record)).toBe(true);
    expect(stalled.stats).toMatchObject({ inFlight: 2, batches: 0, denylistFetches: 0 });
    expect(gate.journal.head(gate.id)).toMatchObject({ seq: 16, acked: 0 });
    for (const s of held) s.destroy();
    stall.close();
    await stalled.stop();
    // Once a service answers again, everything arrives.
    await gate.uploader.uploadAll();
    expect(gate.journal.head(gate.id)).toMatchObject({ seq: 16, acked: 16 });
  });

  it.skipIf(engine.skip)('exactly once: a batch uploaded twice, concurrently, partly and out of order is stored once; forged or altered records are kept apart', async () => {
    const g = await office.addGate('C03-G5', 'C03');
    await Promise.all([0, 1].map((i) => cardWithPass(office, join(dir, `${engine.engine}-once-${i}.img`))));
    for (let i = 0; i < 6; i++) {
      world.now += 600;
      expect((await g.gate.tap(sessionOn(join(dir, `${engine.engine}-once-${i % 2}.img`)), Math.floor(i / 2) % 2 ? 'exit' : 'entry')).decision.pass).toBe(true);
    }
    const records = g.journal.readRecords(g.id, 1, 100);
    const cp = (upto: number) => checkpointJson(signCheckpoint(g.signer, { gateId: g.id, seq: upto, head: records[upto - 1].hash, time: 1 }));
    const batch = (from: number, to: number) => ({ gate: g.id, records: records.slice(from - 1, to).map((r) => hex(r.encoded)), checkpoint: cp(to) });
    // Out of order: 4..6 first, then 1..3 twice at once, then everything again.
    expect(await g.client.uploadJournal(batch(4, 6))).toMatchObject({ stored: 3, duplicates: 0, through: 6 });
    const [x, y] = await Promise.all([g.client.uploadJournal(batch(1, 3)), g.client.uploadJournal(batch(1, 3))]);
    expect(x.stored + y.stored).toBe(3);
    expect(x.duplicates + y.duplicates).toBe(3);
    expect(await g.client.uploadJournal(batch(1, 6))).toMatchObject({ stored: 0, duplicates: 6, quarantined: 0 });
    const stored = await office.store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM gate_taps WHERE gate_id = $1', [g.id]);
    expect(stored.rows[0].n).toBe(6);

    // An altered record (the chain no longer links to the signed head): the batch is kept apart, nothing counted.
    const forged = encodeTapRecord({ ...records[6 - 1], tid: 'CR-FORGED' }, 7, records[5].hash);
    const bad = await g.client.uploadJournal({ gate: g.id, records: [hex(forged.encoded)], checkpoint: cp(6) });
    expect(bad).toMatchObject({ stored: 0, quarantined: 1 });
    // Another gate's key cannot sign for this gate, nor can a gate upload for another.
    const other = office.gates.find((x) => x.id === 'A01-G1')!;
    await expect(other.client.uploadJournal(batch(1, 2))).rejects.toMatchObject({ status: 403 });
    // A record under a seq already stored with other content (a gate journal restored from an old copy).
    const fork = encodeTapRecord({ ...records[2], time: records[2].time + 1 }, 3, records[1].hash);
    const forkReply = await g.client.uploadJournal({ gate: g.id, records: [hex(fork.encoded)], checkpoint: checkpointJson(signCheckpoint(g.signer, { gateId: g.id, seq: 3, head: fork.hash, time: 2 })) });
    expect(forkReply).toMatchObject({ stored: 0, quarantined: 1 });
    const q = await office.store.db.query<{ reason: string }>('SELECT reason FROM journal_quarantine WHERE gate_id = $1 ORDER BY quarantine_id', [g.id]);
    expect(q.rows.map((r) => r.reason.split(':')[0])).toEqual(['gate authentication', 'conflicting record']);
    const forks = await office.store.db.query('SELECT 1 FROM anomalies WHERE kind = $1 AND gate_id = $2', ['journal_fork', g.id]);
    expect(forks.rowCount).toBe(1);
  });

  it.skipIf(engine.skip)('incremental matching with two matchers taking turns (two processes): each forgets what another round made stale, and the trips equal a fresh full read', async () => {
    const out = await office.addGate('A01-G8', 'A01');
    const back = await office.addGate('C03-G8', 'C03');
    const c = await cardWithPass(office, join(dir, `${engine.engine}-incremental.img`));
    const image = join(dir, `${engine.engine}-incremental.img`);
    // The tests before this one leave tickets queued (uploads nobody matched): matched now, so that each round
    // below finds exactly this ticket's new tap.
    while (((await office.bo.matcher(() => world.now * 1000).matchPending())?.tickets ?? 0) > 0);
    const [a, b] = [office.bo.matcher(() => world.now * 1000), office.bo.matcher(() => world.now * 1000)];
    const step = async (gate: TestGate, direction: 'entry' | 'exit', matcher: typeof a) => {
      world.now += 1800; // longer than the 1,500 s from A01 to C03: no impossible travel
      expect((await gate.gate.tap(sessionOn(image), direction)).decision.pass).toBe(true);
      await gate.uploader.uploadAll();
      const m = await matcher.matchPending();
      expect(m?.tickets, `${gate.id} ${direction}`).toBe(1);
      return m!;
    };
    const trips = async () => (await office.store.db.query<{ status: string; fare: number; entry_station: string; exit_station: string | null }>('SELECT status, fare, entry_station, exit_station FROM trips WHERE tid = $1 ORDER BY entry_time', [c.tid])).rows.map((r) => ({ ...r, fare: r.fare === null ? null : Number(r.fare) }));
    await step(out, 'entry', a); // a reads the ticket whole and keeps its one tap
    await step(back, 'exit', b); // b has kept nothing: reads whole
    // a kept only the first entry; b's round took the exit off the queue. Had a trusted what it kept, it would see
    // two entries in a row (a double entry, an incomplete trip). It sees another round happened and reads all.
    const third = await step(back, 'entry', a);
    expect(third.anomalies).toEqual([]);
    expect(third.taps).toBe(3);
    const last = await step(out, 'exit', a); // a's own last round: only the new tap is new, the trips are from all four
    // This process stored that tap: the matcher takes it from memory, as the store holds it, field for field.
    expect(last.tapsFromMemory).toBe(1);
    const stored = (await office.store.db.query<TapRow>(`SELECT ${TAP_COLUMNS} FROM gate_taps WHERE pass AND tid = $1`, [c.tid])).rows;
    expect(stored).toHaveLength(4);
    for (const row of stored) expect(office.bo.recentTaps.get(`${row.gate_id}/${Number(row.seq)}`)).toEqual({ operator: world.operator, tid: c.tid, tap: tapFromRow(row) });
    const expected = [
      { status: 'complete', fare: 500, entry_station: 'A01', exit_station: 'C03' },
      { status: 'complete', fare: 500, entry_station: 'C03', exit_station: 'A01' },
    ];
    expect(await trips()).toEqual(expected);
    // A fresh matcher reading everything (a queue row without tap keys, as queued before migration 6) agrees.
    await office.store.db.query('DELETE FROM trips WHERE tid = $1', [c.tid]);
    await office.store.db.query('INSERT INTO match_queue (operator, tid) VALUES ($1, $2)', [world.operator, c.tid]);
    const fresh = await office.bo.matcher(() => world.now * 1000).matchPending();
    expect(fresh).toMatchObject({ tickets: 1, taps: 4, anomalies: [] });
    expect(await trips()).toEqual(expected);
    const accused = await office.store.db.query('SELECT 1 FROM anomalies WHERE card_serial = $1', [c.serial]);
    expect(accused.rowCount, 'an honest card is never accused').toBe(0);
  });

  it.skipIf(engine.skip)('a sweep that changes trips counts as a matching round: the sweeping matcher forgets only the tickets swept, a matcher of another process forgets all it held', async () => {
    // Forward to 08:00 the next day, so that the one-day passes sold below stay valid through the scenario; open
    // trips become incomplete after 10 minutes here.
    world.now = (Math.floor(world.now / 86400) + 1) * 86400 + 8 * 3600;
    await setTripSetting(office.store, 'incompleteAfter', 600);
    try {
      const gate = await office.addGate('A01-G9', 'A01');
      const exitGate = await office.addGate('B07-G7', 'B07'); // 900 s from A01: every step below is longer
      const images = [0, 1].map((i) => join(dir, `${engine.engine}-sweep-${i}.img`));
      const cards = await Promise.all(images.map((image) => cardWithPass(office, image)));
      const [a, other] = [office.bo.matcher(() => world.now * 1000), office.bo.matcher(() => world.now * 1000)];
      // The tests before this one leave tickets queued and trips open: matched and swept now, so that the rounds and
      // sweeps below find only these two cards.
      while (((await a.matchPending())?.tickets ?? 0) > 0);
      await a.sweep();
      const tap = async (g: TestGate, i: number, direction: 'entry' | 'exit') => {
        const { decision } = await g.gate.tap(sessionOn(images[i]), direction);
        expect(decision, `card ${i} ${direction} at ${g.id}`).toMatchObject({ pass: true });
        await g.uploader.uploadAll();
      };
      const status = async (i: number) => (await office.store.db.query<{ status: string }>('SELECT status FROM trips WHERE tid = $1 ORDER BY entry_time', [cards[i].tid])).rows.map((r) => r.status);
      await tap(gate, 0, 'entry');
      expect(await a.matchPending()).toMatchObject({ tickets: 1 });
      world.now += 900; // card 0's trip: open for longer than the 600 s after which it is incomplete
      await tap(gate, 1, 'entry');
      expect(await a.matchPending()).toMatchObject({ tickets: 1 });
      expect(await a.sweep(), 'card 0 only').toBe(1);
      expect(await status(0)).toEqual(['incomplete']);
      expect(await status(1)).toEqual(['open']);
      // a's own sweep, no other round between: it still holds card 1 (the new tap comes from memory) ...
      world.now += 1000;
      await tap(exitGate, 1, 'exit');
      expect(await a.matchPending()).toMatchObject({ tickets: 1, taps: 2, tapsFromMemory: 1 });
      expect(await status(1)).toEqual(['complete']);
      // ... and not card 0, whose trip the sweep changed: read whole (its late exit completes the trip).
      await tap(exitGate, 0, 'exit');
      expect(await a.matchPending()).toMatchObject({ tickets: 1, taps: 2, tapsFromMemory: 0 });
      expect(await status(0)).toEqual(['complete']);
      // Another process's sweep: a forgets all it held, so card 1's next tap is read with all the others.
      world.now += 1000;
      await tap(gate, 1, 'entry');
      expect(await a.matchPending()).toMatchObject({ tickets: 1, taps: 3, tapsFromMemory: 1 });
      world.now += 1000;
      expect(await other.sweep()).toBe(1);
      expect(await status(1)).toEqual(['complete', 'incomplete']);
      await tap(exitGate, 1, 'exit');
      expect(await a.matchPending()).toMatchObject({ tickets: 1, taps: 4, tapsFromMemory: 0 });
      expect(await status(1)).toEqual(['complete', 'complete']);
    } finally {
      await setTripSetting(office.store, 'incompleteAfter', TRIP_SETTINGS.incompleteAfter.default);
    }
  });

  it.skipIf(engine.skip || engine.engine !== 'pglite')('a queue VACUUM that fails after a round committed (a full disk) leaves no stale memory: the next round still has the taps that round took off the queue', async () => {
    const entryGate = await office.addGate('A01-G10', 'A01');
    const exitGate = await office.addGate('B07-G10', 'B07');
    const image = join(dir, `${engine.engine}-vacuum.img`);
    const c = await cardWithPass(office, image);
    const m = office.bo.matcher(() => world.now * 1000);
    while (((await m.matchPending())?.tickets ?? 0) > 0);
    const tap = async (g: TestGate, direction: 'entry' | 'exit') => {
      world.now += 1800;
      expect((await g.gate.tap(sessionOn(image), direction)).decision.pass, `${direction} at ${g.id}`).toBe(true);
      await g.uploader.uploadAll();
    };
    const status = async () => (await office.store.db.query<{ status: string }>('SELECT status FROM trips WHERE tid = $1 ORDER BY entry_time', [c.tid])).rows.map((r) => r.status);
    await tap(entryGate, 'entry');
    expect(await m.matchPending()).toMatchObject({ tickets: 1, taps: 1 });
    // The next round is the one after which the embedded store vacuums the queue (every 20,000 tickets); that VACUUM
    // fails, after the round's transaction committed.
    (m as unknown as { dequeued: number }).dequeued = 19_999;
    class DiskFull extends Error {}
    const db = office.store.db;
    const exec = db.exec.bind(db);
    db.exec = async (sql: string) => {
      if (sql.startsWith('VACUUM')) throw new DiskFull('could not extend file: No space left on device');
      return exec(sql);
    };
    await tap(exitGate, 'exit');
    try {
      await expect(m.matchPending()).rejects.toThrow(DiskFull);
    } finally {
      db.exec = exec;
    }
    expect(await status(), 'the round itself committed').toEqual(['complete']);
    // The card rides again: the matcher must work from all three taps (the exit it took in the failed round too).
    await tap(exitGate, 'entry');
    expect(await m.matchPending()).toMatchObject({ tickets: 1, taps: 3 });
    expect(await status()).toEqual(['complete', 'open']);
  });

  it.skipIf(engine.skip)('a matching round whose transaction is run again (PostgreSQL retries a deadlock) keeps nothing from the attempt that rolled back', async () => {
    const entryGate = await office.addGate('A01-G11', 'A01');
    const exitGate = await office.addGate('B07-G11', 'B07');
    const images = [0, 1].map((i) => join(dir, `${engine.engine}-retry-${i}.img`));
    const cards = await Promise.all(images.map((image) => cardWithPass(office, image)));
    while (((await office.bo.matcher(() => world.now * 1000).matchPending())?.tickets ?? 0) > 0);
    const tap = async (g: TestGate, i: number, direction: 'entry' | 'exit') => {
      world.now += 1800;
      expect((await g.gate.tap(sessionOn(images[i]), direction)).decision.pass, `card ${i} ${direction} at ${g.id}`).toBe(true);
      await g.uploader.uploadAll();
    };
    const status = async (i: number) => (await office.store.db.query<{ status: string }>('SELECT status FROM trips WHERE tid = $1 ORDER BY entry_time', [cards[i].tid])).rows.map((r) => r.status);
    // The store of matcher a runs a transaction as PostgresDatabase.transaction does on a deadlock (40P01, e.g. with
    // another process's sweep holding a trip row): rolled back, run again. Here the first attempt of a's next round
    // fails at its trips upsert, and between the attempts another process's matcher takes card 0 off the queue.
    let inject = false;
    let between: (() => Promise<void>) | undefined;
    const proxy = Object.create(office.store) as typeof office.store;
    proxy.transaction = async <T,>(fn: (tx: Queryable) => Promise<T>, options?: { serializable?: boolean }): Promise<T> => {
      let failed = false;
      const failing = (tx: Queryable): Queryable => ({
        query: async (sql: string, params?: unknown[]) => {
          if (sql.trimStart().startsWith('INSERT INTO trips')) {
            failed = true;
            // No SQLSTATE: the store itself must not retry it; this view does, as PostgresDatabase does a 40P01.
            throw new Error('deadlock detected (injected)');
          }
          return tx.query(sql, params);
        },
        exec: (sql: string) => tx.exec(sql),
      }) as Queryable;
      try {
        return await office.store.transaction((tx) => fn(inject ? failing(tx) : tx), options);
      } catch (e) {
        if (!failed) throw e;
        inject = false;
        await between?.();
        return office.store.transaction(fn, options);
      }
    };
    const a = new TripMatcher(proxy, world.operator, () => world.now * 1000, office.bo.recentTaps);
    const b = office.bo.matcher(() => world.now * 1000);
    await tap(entryGate, 0, 'entry'); // card 0 queued first
    await tap(entryGate, 1, 'entry');
    inject = true;
    between = async () => {
      await tap(exitGate, 0, 'exit');
      expect(await b.matchPending(1)).toMatchObject({ tickets: 1, taps: 2 }); // card 0, entry and exit
    };
    expect(await a.matchPending(2)).toMatchObject({ tickets: 1 }); // the second attempt finds card 1 only
    expect(await status(0)).toEqual(['complete']);
    // Card 0 rides again; a's next round follows its own (no other round between) and takes card 0 with its new tap.
    await tap(exitGate, 0, 'entry');
    expect(await a.matchPending()).toMatchObject({ tickets: 1, taps: 3 });
    expect(await status(0)).toEqual(['complete', 'open']);
  });

  it.skipIf(engine.skip || engine.engine !== 'postgres')('a sweep beside a matching round of another process does not deadlock with it (the round holds the generation and then writes a trip the sweep changes)', async () => {
    world.now = (Math.floor(world.now / 86400) + 1) * 86400 + 8 * 3600;
    await setTripSetting(office.store, 'incompleteAfter', 600);
    try {
      const entryGate = await office.addGate('A01-G12', 'A01');
      const exitGate = await office.addGate('B07-G12', 'B07');
      const image = join(dir, `${engine.engine}-deadlock.img`);
      const c = await cardWithPass(office, image);
      const errors: string[] = [];
      let pause: Promise<void> | undefined;
      let paused: (() => void) | undefined;
      // Each matcher on its own view of the store: its transactions' statements pass through, their errors are noted
      // (PostgresDatabase retries a deadlock, so the test would not see it otherwise); a's trips upsert may be held.
      const watched = (hold: boolean) => {
        const proxy = Object.create(office.store) as typeof office.store;
        proxy.transaction = <T,>(fn: (tx: Queryable) => Promise<T>, options?: { serializable?: boolean }) =>
          office.store.transaction(
            (tx) =>
              fn({
                query: async (sql: string, params?: unknown[]) => {
                  if (hold && pause && sql.trimStart().startsWith('INSERT INTO trips')) {
                    paused?.();
                    await pause;
                  }
                  try {
                    return await tx.query(sql, params);
                  } catch (e) {
                    errors.push(`${(e as { code?: string }).code}: ${(e as Error).message}`);
                    throw e;
                  }
                },
                exec: (sql: string) => tx.exec(sql),
              } as Queryable),
            options,
          );
        return proxy;
      };
      const a = new TripMatcher(watched(true), world.operator, () => world.now * 1000, office.bo.recentTaps);
      const other = new TripMatcher(watched(false), world.operator, () => world.now * 1000);
      while (((await a.matchPending())?.tickets ?? 0) > 0);
      await a.sweep();
      expect((await entryGate.gate.tap(sessionOn(image), 'entry')).decision.pass).toBe(true);
      await entryGate.uploader.uploadAll();
      expect(await a.matchPending()).toMatchObject({ tickets: 1 });
      world.now += 900; // the trip is open for longer than 600 s; its exit arrives late
      expect((await exitGate.gate.tap(sessionOn(image), 'exit')).decision.pass).toBe(true);
      await exitGate.uploader.uploadAll();
      let release!: () => void;
      pause = new Promise<void>((r) => (release = r));
      const atUpsert = new Promise<void>((r) => (paused = r));
      const round = a.matchPending();
      await atUpsert; // a holds the generation row and is about to complete the trip
      const sweep = other.sweep(); // makes the same trip incomplete, then wants the generation row
      // Until the sweep waits for a lock (on the generation row, or, once that takes it first, on nothing of a's).
      for (let i = 0; i < 200; i++) {
        const w = await office.store.db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        if (Number(w.rows[0].n) > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      release();
      await Promise.all([round, sweep]);
      expect(errors, 'no statement of either failed (a deadlock is one, retried unseen)').toEqual([]);
      const trips = await office.store.db.query<{ status: string }>('SELECT status FROM trips WHERE tid = $1', [c.tid]);
      expect(trips.rows.map((r) => r.status)).toEqual(['complete']);
    } finally {
      await setTripSetting(office.store, 'incompleteAfter', TRIP_SETTINGS.incompleteAfter.default);
    }
  });

  it.skipIf(engine.skip)('a signed batch with one record whose receipt does not verify: the others are stored and queued for matching, that one is kept apart with its reason', async () => {
    const g = await office.addGate('B07-G6', 'B07');
    await Promise.all([0, 1].map((i) => cardWithPass(office, join(dir, `${engine.engine}-mixed-${i}.img`))));
    for (let i = 0; i < 5; i++) {
      world.now += 600;
      expect((await g.gate.tap(sessionOn(join(dir, `${engine.engine}-mixed-${i % 2}.img`)), Math.floor(i / 2) % 2 ? 'exit' : 'entry')).decision.pass).toBe(true);
    }
    const honest = g.journal.readRecords(g.id, 1, 100);
    // The gate's own key signs a chain whose third record carries a receipt with one bit of its MAC flipped: gate
    // authentication passes, only the card's receipt can refuse it (the records after it are chained anew).
    const bad = honest[2].receipt!.slice();
    bad[bad.length - 1] ^= 0x01;
    const chain = [honest[0], honest[1]];
    for (let i = 2; i < honest.length; i++) chain.push(encodeTapRecord(i === 2 ? { ...honest[i], receipt: bad } : honest[i], i + 1, chain[i - 1].hash));
    const cp = checkpointJson(signCheckpoint(g.signer, { gateId: g.id, seq: chain.length, head: chain.at(-1)!.hash, time: 3 }));
    const reply = await g.client.uploadJournal({ gate: g.id, records: chain.map((r) => hex(r.encoded)), checkpoint: cp });
    expect(reply).toMatchObject({ stored: 4, duplicates: 0, quarantined: 1, through: 5 });
    const seqs = await office.store.db.query<{ seq: number }>('SELECT seq FROM gate_taps WHERE gate_id = $1 ORDER BY seq', [g.id]);
    expect(seqs.rows.map((r) => Number(r.seq))).toEqual([1, 2, 4, 5]);
    const q = await office.store.db.query<{ seq: number; reason: string; record: Uint8Array }>('SELECT seq, reason, record FROM journal_quarantine WHERE gate_id = $1', [g.id]);
    expect(q.rows).toHaveLength(1);
    expect(Number(q.rows[0].seq)).toBe(3);
    expect(q.rows[0].reason).toBe('receipt: sym receipt does not verify: receipt MAC is wrong: not this card\'s answer to this command');
    expect(hex(new Uint8Array(q.rows[0].record)), 'the record is kept byte for byte').toBe(hex(chain[2].encoded));
    // What was stored is what the gate journalled, byte for byte, and its tickets wait for the matcher.
    const stored = await office.store.db.query<{ seq: number; record: Uint8Array; hash: Uint8Array }>('SELECT seq, record, hash FROM gate_taps WHERE gate_id = $1 ORDER BY seq', [g.id]);
    for (const r of stored.rows) {
      expect(hex(new Uint8Array(r.record)), `seq ${r.seq}`).toBe(hex(chain[Number(r.seq) - 1].encoded));
      expect(hex(new Uint8Array(r.hash)), `seq ${r.seq}`).toBe(hex(chain[Number(r.seq) - 1].hash));
    }
    const queued = await office.store.db.query<{ tid: string }>('SELECT tid FROM match_queue WHERE tid = ANY($1::text[])', [[...new Set(honest.map((r) => r.tid!))]]);
    expect(queued.rows.map((r) => r.tid).sort()).toEqual([...new Set(honest.map((r) => r.tid!))].sort());
    // The same batch again: the four are duplicates, the bad one stays kept apart once.
    expect(await g.client.uploadJournal({ gate: g.id, records: chain.map((r) => hex(r.encoded)), checkpoint: cp })).toMatchObject({ stored: 0, duplicates: 4, quarantined: 0 });
  });

  it.skipIf(engine.skip).each(['pki', 'sym'] as const)("gate mode %s: a receipt naming another face (DF20) than the gate journalled is kept apart with its reason, nothing stored; the honest record then stores", async (mode) => {
    const g = await office.addGate(`A01-G7${mode}`, 'A01', { mode });
    const image = join(dir, `${engine.engine}-df20-${mode}.img`);
    await cardWithPass(office, image);
    world.now += 600;
    const tap = await g.gate.tap(sessionOn(image), 'entry');
    expect(tap.decision.pass).toBe(true);
    expect(tap.receipt?.faceDigest, 'the card names the face in its receipt').toBeDefined();
    const [honest] = g.journal.readRecords(g.id, 1, 1);
    expect(honest.faceDigest, 'the gate journals the face it decided on').toBeDefined();
    // The gate's own key signs a record whose face digest is not the one the card's receipt names (DF20): one bit
    // off, then none at all. Chain and checkpoint are good, so only the receipt check can refuse it.
    const otherFace = honest.faceDigest!.slice();
    otherFace[0] ^= 0x01;
    const stored = async () => (await office.store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM gate_taps WHERE gate_id = $1', [g.id])).rows[0].n;
    for (const [what, faceDigest, reason] of [
      ['another face', otherFace, `receipt: the receipt names face ${hex(honest.faceDigest!).slice(0, 16)}…, the record face ${hex(otherFace).slice(0, 16)}…`],
      ['no face', undefined, `receipt: the receipt names face ${hex(honest.faceDigest!).slice(0, 16)}…, the record names no face`],
    ] as const) {
      const lie = encodeTapRecord({ ...honest, faceDigest }, 1, honest.prev);
      const reply = await g.client.uploadJournal({ gate: g.id, records: [hex(lie.encoded)], checkpoint: checkpointJson(signCheckpoint(g.signer, { gateId: g.id, seq: 1, head: lie.hash, time: 1 })) });
      expect(reply, what).toMatchObject({ stored: 0, duplicates: 0, quarantined: 1, through: 1 });
      expect(await stored(), what).toBe(0);
      const q = await office.store.db.query<{ reason: string; hash: Uint8Array }>('SELECT reason, hash FROM journal_quarantine WHERE gate_id = $1 AND hash = $2', [g.id, lie.hash]);
      expect(q.rows.map((r) => r.reason), what).toEqual([reason]);
    }
    const queued = await office.store.db.query('SELECT 1 FROM match_queue WHERE tid = $1', [honest.tid]);
    expect(queued.rowCount, 'nothing of the refused records reaches trip matching').toBe(0);
    // The honest record under the same seq is stored: the refusals kept nothing that stands in its way.
    await g.uploader.uploadAll();
    expect(await stored()).toBe(1);
    expect(g.journal.head(g.id)).toMatchObject({ seq: 1, acked: 1 });
  });
});
