// The metro-scale simulation (`eticket simulate`, `npm run bench`): a back office on the embedded store (or
// PostgreSQL) behind its HTTP API, a farm of distinct cards and the gates of every station split over worker
// threads, riders tapping in and out along planned trips while the gates upload and the back office matches;
// rollbacks and clones injected, then found. Reports taps/s end to end, ingest, lag and memory per card.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { anomalyReport, clearingReport, tripReport, type ClearingReport, type TripTotals } from '../backoffice/clearing.js';
import { importIssued, type IssuedTicket } from '../backoffice/bulk.js';
import { denylistVersion } from '../backoffice/denylist.js';
import { Store } from '../backoffice/store/store.js';
import { setTripSetting } from '../backoffice/trips.js';
import { fromHex, hex } from '../sdk/bytes.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { TestOffice } from '../testing/office.js';
import { pglitePrepareTemplate } from '../testing/pglite-template.js';
import { World } from '../testing/world.js';
import { metroNetwork, type SimNetwork } from './sim-network.js';
import type { TapTruth, WorkerConfig, WorkerProgress } from './sim-worker.js';
import { percentile } from './stats.js';

export interface SimulationOptions {
  cards: number;
  stations: number;
  lines: number;
  gatesPerStation: number;
  /** Wall seconds of tapping. */
  durationS: number;
  /** Target taps per second over all gates (sets how many trips each card rides). */
  rate: number;
  /** Simulated seconds of service the run covers (default 18 hours). */
  simSpanS?: number;
  workers: number;
  rollbacks: number;
  clones: number;
  sellers: number;
  seed: string;
  databaseUrl?: string;
  /** Keep every tap's ground truth (tests); memory grows with the taps. */
  collectTaps?: boolean;
  /** After the run, play the rest of the planned day (every trip ends) before draining: a complete day. */
  finishDay?: boolean;
  batchSize?: number;
  /** How much lower (Linux nice) the gate threads run than the back office's thread; default 5, 0 for the same. */
  gateNice?: number;
  keepDir?: boolean;
  onProgress?: (p: SimulationProgress) => void;
  log?: (line: string) => void;
}

export interface SimulationProgress {
  elapsedS: number;
  taps: number;
  tapsPerS: number;
  passes: number;
  rejects: Record<string, number>;
  stored: number;
  storedPerS: number;
  uploadLagMs: number;
  matchBacklog: number;
  matchLagMs: number;
  anomalies: number;
  denylistVersion: number;
  gateDenylistVersions: number[];
  rssMiB: number;
  tapP99Ms?: number;
  behindMs: number;
  /** Event-loop utilisation (0..1) over the last second: the back office's thread, then each worker's. */
  elu: { main: number; workers: number[] };
  /** Records stored per second over the last sample (the ingest rate now, not the average since the start). */
  storedNowPerS: number;
  /** CPU seconds used since the start of the run: the back office's thread (Linux only), and the whole process. */
  cpu: { mainS?: number; processS: number };
}

/**
 * CPU seconds of the main thread (the back office: HTTP, verification, the embedded store), from
 * /proc/self/task/<pid>/stat (utime + stime at 100 ticks a second); undefined off Linux. On a machine shared
 * with other work, CPU time says what the work cost where wall time also counts the waits for a core.
 */
function mainThreadCpuS(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

export interface SimulationReport {
  options: Omit<SimulationOptions, 'onProgress' | 'log'>;
  engine: 'pglite' | 'postgres';
  setupS: number;
  runS: number;
  drainS: number;
  taps: number;
  passes: number;
  rejects: Record<string, number>;
  /** The nice value of the gate threads (the back office's thread keeps the process's); undefined off Linux. */
  gateThreadNice?: number;
  /** Taps the riders' planned day holds, per second of the run: the load offered to the gates (about `rate`). */
  offeredTapsPerS: number;
  /** Taps at the gates per second of the run. */
  gateTapsPerS: number;
  /** Records the back office had stored (verified) by the end of the run, per second of the run. */
  ingestPerS: number;
  /** Taps stored and matched into trips by the end of the run, per second of the run: the end-to-end figure. */
  endToEndPerS: number;
  storedAtEnd: number;
  /** Records stored once every gate's journal went up (after the drain): every tap's record, when none was kept apart. */
  storedAfterDrain: number;
  matchedAtEnd: number;
  lag: { uploadP50Ms: number; uploadP99Ms: number; uploadMaxMs: number; matchP99Ms: number; matchMaxMs: number; firstHalfMaxMs: number; secondHalfMaxMs: number };
  /** Upload lag (ms) at the end of each tenth of the run: bounded when it stops growing. */
  lagTrend: number[];
  /**
   * CPU cost of the run (setup and drain excluded): milliseconds per tap end to end (gates' threads per tap plus the
   * back office's thread per stored record), the back office's part alone, and `capacityTapsPerS`, what two cores
   * wholly given to this process would sustain at that cost (an upper bound; see simulationCpu).
   */
  cpu: { processS: number; mainS?: number; msPerTap: number; mainMsPerStored?: number; capacityTapsPerS: number; loadAverage: number[] };
  tapLatencyP99Ms: number;
  /** How the gates' fixed costs were shared: taps per journal write (group commit), records per upload request. */
  batching: { journalFlushes: number; tapsPerFlush: number; uploadBatches: number; recordsPerBatch: number };
  memory: { cards: number; imageBytesPerCard: number; heapBytesPerCard: number; maxRssMiB: number };
  trips: { complete: number; incomplete: number; exitOnly: number; open: number; revenue: number };
  anomalies: { planned: number; injected: { card: string; kind: string }[]; foundCards: string[]; missed: string[]; falsePositives: string[]; byKind: Record<string, number>; details: { kind: string; card?: string; detail: string }[] };
  denylist: { version: number; cards: number; gateVersions: number[]; refusedTaps: number };
  clearing: ClearingReport;
  tripTotals: TripTotals[];
  network: SimNetwork;
  /** The matcher's clock at its last sweep (epoch ms, simulated): trips open longer than the setting are incomplete. */
  finalNowMs: number;
  /** Cards of the farm and the seller of each: card i was sold by sellers[i % sellers.length]. */
  sellers: string[];
  truth?: TapTruth[];
  timeline: SimulationProgress[];
}

type FromWorker =
  | { type: 'gates'; gates: { id: string; station: string; publicKey: string }[] }
  | { type: 'tickets'; tickets: { cardSerial: string; suite: 'rsa'; face: string; verificationCode: string; sellerId: string; bill: string; keyId: string }[] }
  | { type: 'progress'; progress: WorkerProgress }
  | { type: 'drained'; progress: WorkerProgress }
  | { type: 'done'; progress: WorkerProgress; injected: { card: string; kind: string }[]; planned: { card: string; kind: string }[]; plannedTaps: number; nice?: number; farm: { cards: number; imageBytes: number; heapBytes: number }; uploadDrainMs: number; truth?: TapTruth[] }
  | { type: 'error'; message: string };

// Compiled (dist/, the `eticket` command): the worker is plain JavaScript. From source (tsx, vitest): a small entry
// registers tsx in the worker thread first, since worker threads do not inherit the loader.
const WORKER = fileURLToPath(new URL(import.meta.url.endsWith('.js') ? './sim-worker.js' : './sim-worker.mjs', import.meta.url));

/**
 * The run's CPU cost per tap: the gates' side (every thread but the main one: taps, journals, uploads) per tap at
 * the gates, plus the back office's thread per record it stored; the capacity two idle cores would give at that
 * cost, bounded by the back office's single thread (it cannot use more than one core).
 */
function simulationCpu(p: SimulationProgress, loadAverage: number[]): SimulationReport['cpu'] {
  const { mainS, processS } = p.cpu;
  if (mainS === undefined) {
    const msPerTap = (processS * 1000) / Math.max(1, p.taps);
    return { processS, msPerTap, capacityTapsPerS: 2000 / Math.max(1e-6, msPerTap), loadAverage };
  }
  const gateMs = ((processS - mainS) * 1000) / Math.max(1, p.taps);
  const mainMsPerStored = (mainS * 1000) / Math.max(1, p.stored);
  const msPerTap = gateMs + mainMsPerStored;
  return { processS, mainS, msPerTap, mainMsPerStored, capacityTapsPerS: Math.min(2000 / Math.max(1e-6, msPerTap), 1000 / Math.max(1e-6, mainMsPerStored)), loadAverage };
}

export async function runSimulation(o: SimulationOptions): Promise<SimulationReport> {
  const log = o.log ?? (() => undefined);
  if (o.gatesPerStation < o.workers) throw new RangeError(`gatesPerStation (${o.gatesPerStation}) must be at least workers (${o.workers}): each worker runs its own gates at every station`);
  const setupStart = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'eticket-sim-'));
  const world = World.create('rsa', 'MT');
  const simSpanS = o.simSpanS ?? 18 * 3600;
  const simStart = Math.floor(Date.UTC(2030, 5, 3, 5, 30) / 1000);
  world.now = simStart;
  const day = 20300603;
  const net = metroNetwork(o.stations, o.lines, `${o.seed}:network`);
  // The embedded store starts from the machine's empty template (one initdb per machine, not per run).
  if (!o.databaseUrl) process.env.ETICKET_PGLITE_TEMPLATE ??= await pglitePrepareTemplate();
  mkdirSync(join(dir, 'office'), { recursive: true });
  const store = await Store.open(join(dir, 'office'), { url: o.databaseUrl, create: true, poolSize: 20 });
  const office = new TestOffice(world, store, dir);
  const workers: Worker[] = [];
  try {
    await office.listen();
    log(`back office on ${office.url} (${store.engine}); network of ${net.stations.length} stations`);
    const sellers = Array.from({ length: o.sellers }, (_, i) => `seller-${i + 1}`);
    for (const s of sellers) await office.register(s, 'seller');
    await office.loadNetwork(net.input);
    await setTripSetting(store, 'incompleteAfter', 2 * 3600);
    await setTripSetting(store, 'travelSlack', 30);
    const authority = world.keys.authorityKey as RsaPrivateKey;
    const tripsPerCard = Math.max(1, (o.rate * o.durationS) / 2 / o.cards);
    const per = Math.ceil(o.cards / o.workers);
    const imports: Promise<number>[] = [];
    const progress = new Map<number, WorkerProgress>();
    const drained = new Set<number>();
    const done = new Map<number, Extract<FromWorker, { type: 'done' }>>();
    let gatesRegistered = 0;
    let failure: Error | undefined;
    const ready = { gates: 0 };
    const totalGates = net.stations.length * o.gatesPerStation;
    for (let w = 0; w < o.workers; w++) {
      const cardFrom = w * per;
      const cfg: WorkerConfig = {
        index: w,
        workers: o.workers,
        seed: o.seed,
        operator: world.operator,
        cardFrom,
        cardCount: Math.max(0, Math.min(per, o.cards - cardFrom)),
        stations: o.stations,
        lines: o.lines,
        gatesPerStation: o.gatesPerStation,
        authorityKey: hex(authority.toPkcs8()),
        masterKey: hex(world.masterKey.key),
        terminalPublicKey: hex(world.keys.terminalKeys.publicKey),
        sellers,
        day,
        durationS: o.durationS,
        simSpanS,
        simStart,
        tripsPerCard,
        rollbacks: Math.floor(o.rollbacks / o.workers) + (w < o.rollbacks % o.workers ? 1 : 0),
        clones: Math.floor(o.clones / o.workers) + (w < o.clones % o.workers ? 1 : 0),
        journalDir: join(dir, `journal-w${w}`),
        collectTaps: o.collectTaps ?? false,
        batchSize: o.batchSize ?? 500,
        finishDay: o.finishDay ?? false,
        gateNice: o.gateNice ?? 5,
      };
      // ETICKET_SIM_PROFILE=<dir>: a CPU profile of each worker (node --cpu-prof) for the performance write-up.
      const prof = process.env.ETICKET_SIM_PROFILE;
      const worker = new Worker(WORKER, { workerData: cfg, execArgv: prof ? [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${prof}`] : undefined });
      workers.push(worker);
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'gates') {
          ready.gates += m.gates.length;
          imports.push(
            (async () => {
              for (const g of m.gates) {
                await office.registerPublicKey(g.id, 'terminal', fromHex(g.publicKey), { station: g.station, kind: 'gate' });
                gatesRegistered++;
              }
              return 0;
            })(),
          );
        } else if (m.type === 'tickets') {
          const tickets: IssuedTicket[] = m.tickets.map((t) => ({ ...t, face: fromHex(t.face), verificationCode: fromHex(t.verificationCode) }));
          const prev = imports[imports.length - 1] ?? Promise.resolve(0);
          imports.push(prev.then(() => importIssued(store, tickets)));
        } else if (m.type === 'progress') progress.set(w, m.progress);
        else if (m.type === 'drained') drained.add(w);
        else if (m.type === 'done') done.set(w, m);
        else if (m.type === 'error') failure = new Error(`simulation worker ${w}: ${m.message}`);
      });
      worker.on('error', (e) => (failure = e));
    }
    await office.bo.ensureRootKey();
    // Wait for every gate registered and every pass imported before the first tap.
    const expectedTickets = o.cards;
    for (;;) {
      if (failure) throw failure;
      const imported = (await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM tickets')).rows[0].n;
      if (ready.gates === totalGates && gatesRegistered === totalGates && Number(imported) === expectedTickets) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.all(imports);
    const setupS = (Date.now() - setupStart) / 1000;
    log(`setup ${setupS.toFixed(1)} s: ${o.cards} cards with a pass, ${totalGates} gates, ${sellers.length} sellers; ${tripsPerCard.toFixed(1)} trips per card planned`);

    // ---- run
    const t0 = Date.now() + 300;
    const speed = simSpanS / o.durationS;
    const simNowMs = () => (simStart + ((Date.now() - t0) / 1000) * speed) * 1000;
    for (const w of workers) w.postMessage({ type: 'start', url: office.url, t0 });
    const matcher = office.bo.matcher(simNowMs);
    let matching = true;
    let matchedTickets = 0;
    const matchLoop = (async () => {
      let lastSweep = Date.now();
      while (matching) {
        try {
          const r = await matcher.matchPending(1000);
          if (r && r.tickets) {
            matchedTickets += r.tickets;
            continue;
          }
          if (Date.now() - lastSweep > 5000) {
            await matcher.sweep();
            lastSweep = Date.now();
          }
        } catch (e) {
          log(`matcher: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const timeline: SimulationProgress[] = [];
    const matchLag = async () => {
      const r = (await store.db.query<{ n: number; age: number | null }>("SELECT count(*)::int AS n, extract(epoch FROM (now() - min(queued_at)))::float8 AS age FROM match_queue")).rows[0];
      return { backlog: Number(r.n), lagMs: r.age === null ? 0 : Math.max(0, Number(r.age) * 1000) };
    };
    let maxRss = 0;
    const cpu0 = { main: mainThreadCpuS(), process: process.cpuUsage() };
    const cpuNow = () => {
      const m = mainThreadCpuS();
      const p = process.cpuUsage(cpu0.process);
      return { mainS: m === undefined || cpu0.main === undefined ? undefined : m - cpu0.main, processS: (p.user + p.system) / 1e6 };
    };
    let lastStored = { at: Date.now(), n: 0 };
    let eluMain = performance.eventLoopUtilization();
    let eluWorkers = workers.map((w) => w.performance.eventLoopUtilization());
    const sample = async (): Promise<SimulationProgress> => {
      const nowMain = performance.eventLoopUtilization();
      const nowWorkers = workers.map((w) => w.performance.eventLoopUtilization());
      const elu = { main: performance.eventLoopUtilization(nowMain, eluMain).utilization, workers: nowWorkers.map((e, i) => workers[i].performance.eventLoopUtilization(e, eluWorkers[i]).utilization) };
      eluMain = nowMain;
      eluWorkers = nowWorkers;
      const ps = [...progress.values()];
      const elapsedS = (Date.now() - t0) / 1000;
      const taps = ps.reduce((n, p) => n + p.taps, 0);
      const rejects: Record<string, number> = {};
      for (const p of ps) for (const [k, v] of Object.entries(p.rejects)) rejects[k] = (rejects[k] ?? 0) + v;
      const m = await matchLag();
      const anomalies = Number((await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM anomalies')).rows[0].n);
      const rss = process.memoryUsage().rss / 2 ** 20;
      maxRss = Math.max(maxRss, rss);
      const stored = office.bo.journal.stats.stored;
      const storedNowPerS = ((stored - lastStored.n) * 1000) / Math.max(1, Date.now() - lastStored.at);
      lastStored = { at: Date.now(), n: stored };
      return {
        elapsedS,
        taps,
        tapsPerS: taps / Math.max(elapsedS, 1e-3),
        passes: ps.reduce((n, p) => n + p.passes, 0),
        rejects,
        stored,
        storedPerS: stored / Math.max(elapsedS, 1e-3),
        uploadLagMs: Math.max(0, ...ps.map((p) => p.uploadLagMs)),
        matchBacklog: m.backlog,
        matchLagMs: m.lagMs,
        anomalies,
        denylistVersion: await denylistVersion(store.db, world.operator),
        gateDenylistVersions: ps.map((p) => p.denylistVersion),
        rssMiB: Math.round(rss),
        tapP99Ms: Math.max(0, ...ps.map((p) => p.tapLatency?.p99 ?? 0)),
        behindMs: Math.max(0, ...ps.map((p) => p.behindMs)),
        elu,
        storedNowPerS,
        cpu: cpuNow(),
      };
    };
    while (Date.now() - t0 < o.durationS * 1000) {
      if (failure) throw failure;
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(10, t0 + o.durationS * 1000 - Date.now()))));
      if (Date.now() < t0) continue;
      const p = await sample();
      timeline.push(p);
      o.onProgress?.(p);
    }
    const atEnd = await sample();
    const runS = (Date.now() - t0) / 1000;
    const loadAtEnd = loadavg();
    const matchedAtEnd = Number((await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM gate_taps g WHERE g.pass AND NOT EXISTS (SELECT 1 FROM match_queue q WHERE q.operator = g.operator AND q.tid = g.tid)')).rows[0].n);
    for (const w of workers) w.postMessage({ type: 'stop' });
    const drainStart = Date.now();
    // Every journal stored, then everything stored matched (its anomalies raised, their cards denylisted), and only
    // then the gates' last denylist fetch: so the version they end with is the last one, however far the matcher
    // lagged behind the uploads.
    while (drained.size < workers.length) {
      if (failure) throw failure;
      await new Promise((r) => setTimeout(r, 100));
    }
    while ((await matchLag()).backlog > 0) await new Promise((r) => setTimeout(r, 100));
    matching = false;
    await matchLoop;
    const finalNowMs = simNowMs();
    const finalMatcher = office.bo.matcher(() => finalNowMs);
    await finalMatcher.sweep();
    for (const w of workers) w.postMessage({ type: 'sync' });
    while (done.size < workers.length) {
      if (failure) throw failure;
      await new Promise((r) => setTimeout(r, 100));
    }
    const drainS = (Date.now() - drainStart) / 1000;
    const final = [...done.values()];
    const finalProgress = final.map((d) => d.progress);
    const rejects: Record<string, number> = {};
    for (const p of finalProgress) for (const [k, v] of Object.entries(p.rejects)) rejects[k] = (rejects[k] ?? 0) + v;
    const injected = final.flatMap((d) => d.injected);
    const anomalies = await anomalyReport(store, world.operator);
    const foundCards = [...new Set(anomalies.map((a) => a.card).filter((c): c is string => !!c))];
    const injectedCards = new Set(injected.map((i) => i.card));
    const byKind: Record<string, number> = {};
    for (const a of anomalies) byKind[a.kind] = (byKind[a.kind] ?? 0) + 1;
    const trips = await tripReport(store, {});
    const sum = (f: (t: TripTotals) => number) => trips.totals.reduce((n, t) => n + f(t), 0);
    const clearing = await clearingReport(store, world.operator, {});
    const denyCards = Number((await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM denylist WHERE removed_version IS NULL')).rows[0].n);
    const uploadLags = timeline.map((t) => t.uploadLagMs).sort((a, b) => a - b);
    const matchLags = timeline.map((t) => t.matchLagMs).sort((a, b) => a - b);
    const half = Math.floor(timeline.length / 2);
    const farmCards = final.reduce((n, d) => n + d.farm.cards, 0);
    const report: SimulationReport = {
      options: { ...o, onProgress: undefined, log: undefined } as SimulationReport['options'],
      engine: store.engine,
      setupS,
      runS,
      drainS,
      taps: finalProgress.reduce((n, p) => n + p.taps, 0),
      passes: finalProgress.reduce((n, p) => n + p.passes, 0),
      rejects,
      gateThreadNice: final[0]?.nice,
      offeredTapsPerS: final.reduce((n, d) => n + d.plannedTaps, 0) / o.durationS,
      gateTapsPerS: atEnd.taps / runS,
      ingestPerS: atEnd.stored / runS,
      endToEndPerS: Math.min(atEnd.stored, matchedAtEnd + (atEnd.taps - atEnd.passes)) / runS,
      storedAtEnd: atEnd.stored,
      storedAfterDrain: office.bo.journal.stats.stored,
      matchedAtEnd,
      lag: {
        uploadP50Ms: uploadLags.length ? percentile(uploadLags, 0.5) : 0,
        uploadP99Ms: uploadLags.length ? percentile(uploadLags, 0.99) : 0,
        uploadMaxMs: uploadLags.at(-1) ?? 0,
        matchP99Ms: matchLags.length ? percentile(matchLags, 0.99) : 0,
        matchMaxMs: matchLags.at(-1) ?? 0,
        firstHalfMaxMs: Math.max(0, ...timeline.slice(0, half).map((t) => t.uploadLagMs + t.matchLagMs)),
        secondHalfMaxMs: Math.max(0, ...timeline.slice(half).map((t) => t.uploadLagMs + t.matchLagMs)),
      },
      lagTrend: Array.from({ length: 10 }, (_, i) => timeline[Math.min(timeline.length - 1, Math.floor(((i + 1) * timeline.length) / 10) - 1)]?.uploadLagMs ?? 0),
      cpu: simulationCpu(atEnd, loadAtEnd),
      tapLatencyP99Ms: Math.max(0, ...timeline.map((t) => t.tapP99Ms ?? 0)),
      batching: (() => {
        const flushes = finalProgress.reduce((n, p) => n + p.flushes, 0);
        const batches = finalProgress.reduce((n, p) => n + p.batches, 0);
        const journalled = finalProgress.reduce((n, p) => n + p.journalled, 0);
        return { journalFlushes: flushes, tapsPerFlush: journalled / Math.max(1, flushes), uploadBatches: batches, recordsPerBatch: finalProgress.reduce((n, p) => n + p.uploaded, 0) / Math.max(1, batches) };
      })(),
      memory: { cards: farmCards, imageBytesPerCard: final.reduce((n, d) => n + d.farm.imageBytes, 0) / Math.max(1, farmCards), heapBytesPerCard: final.reduce((n, d) => n + d.farm.heapBytes, 0) / Math.max(1, farmCards), maxRssMiB: Math.round(maxRss) },
      trips: { complete: sum((t) => t.complete), incomplete: sum((t) => t.incomplete), exitOnly: sum((t) => t.exitOnly), open: sum((t) => t.open), revenue: sum((t) => t.revenue) },
      anomalies: { planned: final.reduce((n, d) => n + d.planned.length, 0), injected, foundCards, missed: [...injectedCards].filter((c) => !foundCards.includes(c)), falsePositives: foundCards.filter((c) => !injectedCards.has(c)), byKind, details: anomalies.slice(0, 50).map((a) => ({ kind: a.kind, card: a.card, detail: a.detail })) },
      denylist: { version: await denylistVersion(store.db, world.operator), cards: denyCards, gateVersions: finalProgress.map((p) => p.denylistVersion), refusedTaps: rejects.denylisted ?? 0 },
      clearing,
      tripTotals: trips.totals,
      network: net,
      finalNowMs,
      sellers,
      truth: o.collectTaps ? final.flatMap((d) => d.truth ?? []) : undefined,
      timeline,
    };
    return report;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await office.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }
}
