// `eticket simulate`: the metro-scale simulation (bench/simulation.ts) from the command line: a progress line a
// second, then the report (taps/s end to end, ingest, lag, memory per card, anomalies injected and found).

import type { Command } from 'commander';
import { intArg } from './cmd-card.js';
import { globals, UsageError } from './context.js';

interface SimOptions {
  cards: number;
  stations: number;
  lines: number;
  gates: number;
  duration: number;
  rate: number;
  workers: number;
  rollbacks: number;
  clones: number;
  sellers: number;
  seed: string;
  batch: number;
  gateNice: number;
  keep?: boolean;
}

const f0 = (n: number) => n.toFixed(0);
const s1 = (ms: number) => (ms / 1000).toFixed(1);

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('metro-scale simulation: distinct cards, gates on worker threads, journals uploaded while the back office matches trips')
    .option('--cards <n>', 'cards in the farm (each a distinct card with a metro pass)', intArg('cards'), 20_000)
    .option('--stations <n>', 'stations in the network', intArg('stations'), 24)
    .option('--lines <n>', 'lines (chains of stations crossing at interchanges)', intArg('lines'), 3)
    .option('--gates <n>', 'gates per station', intArg('gates'), 4)
    .option('--duration <seconds>', 'how long the riders tap (wall clock)', intArg('duration'), 600)
    .option('--rate <taps/s>', 'target taps per second over all gates', intArg('rate'), 1000)
    .option('--workers <n>', 'worker threads running the gates (the back office runs in the main thread)', intArg('workers'), 2)
    .option('--rollbacks <n>', 'cards whose memory is copied back after a trip (then ride again)', intArg('rollbacks'), 5)
    .option('--clones <n>', 'cards copied and ridden in parallel', intArg('clones'), 5)
    .option('--sellers <n>', 'sellers the passes are sold by', intArg('sellers'), 3)
    .option('--seed <text>', 'seed of the farm, the network and the riders', 'eticket')
    .option('--batch <n>', 'records per upload', intArg('batch'), 500)
    .option('--gate-nice <n>', 'how much lower the gate threads run than the back office (Linux nice, 0-19; 0: the same)', intArg('gate-nice'), 5)
    .option('--keep', 'keep the working directory (journals, store) and print where it is')
    .addHelpText(
      'after',
      '\nThe back office runs on the embedded store (or --database postgres://…) in this process, behind its HTTP API;\nthe gates upload over HTTP. A line a second on stderr shows taps/s, records stored, upload lag, match backlog,\nanomalies and the denylist version the gates hold. --json prints the report (one JSON document) on stdout.\n\nExample:\n  $ eticket simulate --duration 60 --cards 5000 --rate 500\n  $ eticket simulate --json > sim.json          # 10 minutes at 1,000 taps/s',
    )
    .action(async (o: SimOptions, cmd: Command) => {
      if (o.cards < 10 || o.stations < 4 || o.gates < 1 || o.duration < 1 || o.rate < 1 || o.workers < 1 || o.workers > 16 || o.gateNice < 0 || o.gateNice > 19) throw new UsageError('--cards ≥ 10, --stations ≥ 4, --gates ≥ 1, --duration ≥ 1, --rate ≥ 1, --workers 1..16, --gate-nice 0..19');
      if (o.stations < 2 * o.lines) throw new UsageError('each line needs at least two stations');
      // Each worker runs whole gates of every station (a gate's journal chain lives in one thread).
      if (o.gates < o.workers) throw new UsageError(`--gates (${o.gates} per station) must be at least --workers (${o.workers}): each worker thread runs its own gates at every station`);
      const json = globals(cmd).json;
      const { databaseUrl } = await import('./store.js');
      // The simulation is part of the benchmark, which the package does not ship (its farm and office are test harness).
      const { runSimulation } = await import('../../bench/simulation.js').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ERR_MODULE_NOT_FOUND' && /bench[\\/]simulation/.test(e.message)) throw new UsageError('eticket simulate runs from a checkout of eticket (the benchmark is not in the package): npm ci there, then npx eticket simulate or npm run bench');
        throw e;
      });
      const tty = process.stderr.isTTY;
      const r = await runSimulation({
        cards: o.cards,
        stations: o.stations,
        lines: o.lines,
        gatesPerStation: o.gates,
        durationS: o.duration,
        rate: o.rate,
        workers: o.workers,
        rollbacks: o.rollbacks,
        clones: o.clones,
        sellers: o.sellers,
        seed: o.seed,
        batchSize: o.batch,
        gateNice: o.gateNice,
        keepDir: o.keep,
        databaseUrl: databaseUrl(cmd),
        log: (l) => process.stderr.write(`simulate: ${l}\n`),
        onProgress: (p) => {
          const line = `${f0(p.elapsedS).padStart(4)} s  taps ${p.taps} (${f0(p.tapsPerS)}/s)  stored ${p.stored} (${f0(p.storedPerS)}/s, now ${f0(p.storedNowPerS)}/s)  upload lag ${s1(p.uploadLagMs)} s  match backlog ${p.matchBacklog} (${s1(p.matchLagMs)} s)  anomalies ${p.anomalies}  denylist v${p.denylistVersion} gates ${p.gateDenylistVersions.join('/')}  tap p99 ${f0(p.tapP99Ms ?? 0)} ms  busy ${[p.elu.main, ...p.elu.workers].map((x) => f0(x * 100)).join('/')} %  rss ${p.rssMiB} MiB`;
          process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
        },
      });
      if (tty) process.stderr.write('\n');
      if (json) {
        const { network, truth, timeline, ...rest } = r;
        console.log(JSON.stringify({ ...rest, network: { stations: network.stations.length, links: network.links.length, fares: network.input.fares.length }, timeline }));
        return;
      }
      const a = r.anomalies;
      console.log(
        [
          `simulation on ${r.engine}: ${o.cards} cards, ${o.stations} stations × ${o.gates} gates, ${o.workers} worker threads, ${o.duration} s`,
          `offered               ${f0(r.offeredTapsPerS)} taps/s in the riders' planned day (--rate ${o.rate})`,
          `taps at the gates     ${r.taps} (${f0(r.gateTapsPerS)}/s), ${r.passes} passed; refused: ${Object.entries(r.rejects).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
          `stored by the office  ${r.storedAtEnd} by the end of the run (${f0(r.ingestPerS)}/s)`,
          `end to end            ${f0(r.endToEndPerS)} taps/s stored and matched into trips within the run`,
          `lag                   upload p50 ${s1(r.lag.uploadP50Ms)} s, p99 ${s1(r.lag.uploadP99Ms)} s, max ${s1(r.lag.uploadMaxMs)} s; matching p99 ${s1(r.lag.matchP99Ms)} s; first half max ${s1(r.lag.firstHalfMaxMs)} s, second half ${s1(r.lag.secondHalfMaxMs)} s; drained ${r.drainS.toFixed(1)} s after the run`,
          `lag trend             upload lag at each tenth of the run: ${r.lagTrend.map((x) => s1(x)).join(' ')} s`,
          `CPU                   ${r.cpu.msPerTap.toFixed(2)} ms a tap end to end${r.cpu.mainMsPerStored === undefined ? '' : ` (back office thread ${r.cpu.mainMsPerStored.toFixed(2)} ms a stored record)`}: two idle cores would carry about ${f0(r.cpu.capacityTapsPerS)} taps/s; load average ${r.cpu.loadAverage.map((x) => x.toFixed(1)).join(' ')}`,
          `tap latency p99       ${f0(r.tapLatencyP99Ms)} ms (journal durable before the answer)`,
          `batching              ${r.batching.tapsPerFlush.toFixed(1)} taps a journal write (${r.batching.journalFlushes} writes), ${r.batching.recordsPerBatch.toFixed(0)} records an upload (${r.batching.uploadBatches} requests)`,
          `memory per card       ${f0(r.memory.imageBytesPerCard)} B image, ${f0(r.memory.heapBytesPerCard)} B heap; process RSS max ${r.memory.maxRssMiB} MiB`,
          `trips                 ${r.trips.complete} complete, ${r.trips.incomplete} incomplete, ${r.trips.exitOnly} exit-only, ${r.trips.open} open; revenue ${r.trips.revenue}`,
          `anomalies             ${a.injected.length} injected (of ${a.planned} planned), ${a.injected.length - a.missed.length} found${a.missed.length ? `, MISSED ${a.missed.join(' ')}` : ''}${a.falsePositives.length ? `, FALSE POSITIVES ${a.falsePositives.join(' ')}` : ', no false positive'}; ${Object.entries(a.byKind).map(([k, v]) => `${k} ${v}`).join(', ')}`,
          `denylist              version ${r.denylist.version}, ${r.denylist.cards} card(s); gates hold ${r.denylist.gateVersions.join('/')}; ${r.denylist.refusedTaps} tap(s) refused offline`,
          `setup                 ${r.setupS.toFixed(0)} s (gate keys, farm passes signed and imported)`,
        ].join('\n'),
      );
      if (a.missed.length || a.falsePositives.length) process.exitCode = 4;
    });
}
