// One worker thread of a metro simulation (bench/simulation.ts): its share of the card farm and of the gates of
// every station, riders entering and exiting along their planned trips, a journal with group commit for its
// gates, their uploader and denylist; rollbacks and clones injected as planned. Reports to the main thread.

import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { BackofficeClient } from '../host/backoffice-client.js';
import { DenylistCache } from '../host/denylist.js';
import { GateJournal } from '../host/journal.js';
import { JournalUploader } from '../host/journal-uploader.js';
import { OfflineGate } from '../host/offline-gate.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { EticketCard } from '../card/applet.js';
import { MemoryBackend } from '../card/nvm.js';
import { fromHex, hex } from '../sdk/bytes.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { keyId } from '../sdk/crypto/suite.js';
import { formatServiceDate } from '../sdk/fields.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { faceDigest, signBill } from '../sdk/roles/bill.js';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import { PRICING, TICKET_KIND } from '../sdk/ticket.js';
import { CardFarm, type FarmProfile } from './card-farm.js';
import { metroNetwork, prng } from './sim-network.js';
import { percentile } from './stats.js';

export interface WorkerConfig {
  index: number;
  workers: number;
  seed: string;
  operator: string;
  cardFrom: number;
  cardCount: number;
  stations: number;
  lines: number;
  gatesPerStation: number;
  /** Authority root key (PKCS#8, hex): signs TF_V and the sale bills, as the back office would. */
  authorityKey: string;
  masterKey: string;
  terminalPublicKey: string;
  sellers: string[];
  day: number;
  /** Wall seconds the taps run, and simulated seconds of service they cover. */
  durationS: number;
  simSpanS: number;
  simStart: number;
  tripsPerCard: number;
  rollbacks: number;
  clones: number;
  journalDir: string;
  /** Keep the list of every tap (tests compare their own totals with the reports). */
  collectTaps: boolean;
  batchSize: number;
  /** On stop, play the rest of the planned day before reporting (a complete simulated day, for tests). */
  finishDay: boolean;
  /** Added to this thread's nice value (yieldToBackOffice). */
  gateNice: number;
}

/**
 * start: the taps begin at t0. stop: the taps end (with finishDay, once the planned day is played), the journal goes
 * up, then the worker posts `drained`. sync: the back office has matched everything it stored; fetch the last
 * denylist and post `done`. (A sync before the matching is over could miss the anomalies of the last uploads.)
 */
export type WorkerIn = { type: 'start'; url: string; t0: number } | { type: 'stop' } | { type: 'sync' };

export interface TapTruth {
  card: string;
  tid: string;
  seller: string;
  gate: string;
  seq: number;
  station: string;
  direction: 'entry' | 'exit';
  time: number;
  /** The ticket's counter after the tap (the receipt's). */
  counter?: number;
  pass: boolean;
  reason?: string;
}

export interface WorkerProgress {
  index: number;
  taps: number;
  passes: number;
  rejects: Record<string, number>;
  journalled: number;
  acked: number;
  /** Age (ms) of the oldest record not yet stored at the back office. */
  uploadLagMs: number;
  uploadErrors: number;
  lastUploadError?: string;
  denylistVersion: number;
  behindMs: number;
  flushes: number;
  /** Upload requests answered, and the records they carried. */
  batches: number;
  uploaded: number;
  tapLatency?: { p50: number; p99: number; max: number };
}

interface Trip {
  from: string;
  to: string;
  start: number;
  travel: number;
}

interface Rider {
  /** Farm index of the card, and whether this rider holds a copy (a clone) of it. */
  card: number;
  twin: boolean;
  trips: Trip[];
  next: number;
  /** Next event: the entry (inside false) or the exit of trips[next]. */
  inside: boolean;
  at: number;
  /** Rollback plan: the trip before whose entry the memory is copied, restored after its exit. */
  rollbackTrip?: number;
  snapshot?: Uint8Array;
  /** The next tap of this rider is the injected one (a copy's first tap, a restored card's replay). */
  injection?: 'rollback' | 'clone';
}

const cfg = workerData as WorkerConfig;
const post = (m: unknown) => parentPort!.postMessage(m);

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * The gate threads yield to the back office's. On this one machine they share two cores with it, where a network's
 * gates and its back office each run on their own hardware. With equal shares, the back office's thread (the one
 * serial stage: verify, store, match) was runnable but waiting for a core for a third of the time at 1,000 taps/s
 * while the gates, which have room, ran on: its upload lag grew. A nicer gate thread still gets the cores it needs;
 * Linux applies nice per thread (setpriority on the thread's id). Returns the nice value this thread now has, or
 * undefined where it cannot be changed (not Linux).
 */
function yieldToBackOffice(by: number): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(tid) || tid <= 0) return undefined;
    if (by > 0) setPriority(tid, Math.min(19, getPriority(tid) + by));
    return getPriority(tid);
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const nice = yieldToBackOffice(cfg.gateNice);
  const net = metroNetwork(cfg.stations, cfg.lines, `${cfg.seed}:network`);
  const rnd = prng(`${cfg.seed}:worker:${cfg.index}`);
  // ---- gates: this worker runs gates G<index+1>, G<index+1+workers>, ... of every station
  const gates: { id: string; station: string; key: RsaPrivateKey }[] = [];
  for (const station of net.stations) for (let g = cfg.index; g < cfg.gatesPerStation; g += cfg.workers) gates.push({ id: `${station}-G${g + 1}`, station, key: RsaPrivateKey.generate(2048) });
  post({ type: 'gates', gates: gates.map((g) => ({ id: g.id, station: g.station, publicKey: hex(g.key.publicKey) })) });

  // ---- the farm and its passes (TF_V and the sale bill signed with the authority's key, as the back office does)
  const authority = RsaPrivateKey.fromPkcs8(fromHex(cfg.authorityKey));
  const masterKey = { operator: cfg.operator, key: fromHex(cfg.masterKey) };
  const profile: FarmProfile = { suite: 'rsa', masterKey, authority: { publicKey: authority.publicKey, scopes: ['*'] }, terminal: { publicKey: fromHex(cfg.terminalPublicKey), scopes: ['*'] } };
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const farm = new CardFarm(cfg.seed, profile, cfg.cardFrom);
  const server = new TicketServer(cfg.operator, undefined, () => cfg.simStart - 3600);
  const auth = new AuthenticationServer(authority, { suite: 'rsa', needsSigningCertificate: true, encryptionKey: () => new Uint8Array(0), signingKey: () => new Uint8Array(0) });
  const dayStart = Date.parse(`${formatServiceDate(cfg.day)}T00:00:00Z`) / 1000;
  const tids: string[] = [];
  const sellerOf: string[] = [];
  let batch: unknown[] = [];
  const keyIdHex = hex(keyId(authority.publicKey));
  for (let k = 0; k < cfg.cardCount; k++) {
    const i = cfg.cardFrom + k;
    const tid = `${cfg.operator}-${cfg.day}-P${String(i).padStart(7, '0')}`;
    const face = server.createTicket({ tid, serviceDate: cfg.day, kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: 255, validFrom: dayStart, validUntil: dayStart + 86400 - 1, fare: 0, currency: 'CNY' });
    const signed = auth.sign(face, { serial: farm.serial(i) });
    farm.add(i, signed);
    const seller = cfg.sellers[i % cfg.sellers.length];
    tids.push(tid);
    sellerOf.push(seller);
    const { document } = signBill(authority, { billId: hex(new Uint8Array(randomBytes(16))), kind: 'sale', operator: cfg.operator, tid, faceDigest: faceDigest(signed.faceEncoded), card: hex(farm.serial(i)), seller, price: 0, currency: 'CNY', time: cfg.simStart - 3600, item: { serviceDate: formatServiceDate(cfg.day) } });
    batch.push({ cardSerial: hex(farm.serial(i)), suite: 'rsa', face: hex(signed.faceEncoded), verificationCode: hex(signed.verificationCodeEncoded), sellerId: seller, bill: document, keyId: keyIdHex });
    if (batch.length === 2000 || k === cfg.cardCount - 1) {
      post({ type: 'tickets', tickets: batch });
      batch = [];
    }
  }
  gc();
  const farmHeapBytes = process.memoryUsage().heapUsed - heapBefore;

  // ---- the riders' day: trips along the network, one after the other
  const riders: Rider[] = [];
  const planTrips = (startAt: number, from: string, count: number): Trip[] => {
    const out: Trip[] = [];
    const starts = Array.from({ length: count }, () => startAt + rnd() * (cfg.simStart + cfg.simSpanS - startAt)).sort((a, b) => a - b);
    let at = from;
    let free = startAt;
    for (const s0 of starts) {
      let to = net.stations[Math.floor(rnd() * net.stations.length)];
      if (to === at) to = net.stations[(net.stations.indexOf(at) + 1) % net.stations.length];
      const travel = Math.round(net.travel(at, to) * (1.1 + rnd() * 0.5) + 30);
      const start = Math.max(s0, free + 60);
      if (start + travel > cfg.simStart + cfg.simSpanS) break;
      out.push({ from: at, to, start, travel });
      free = start + travel;
      at = to;
    }
    return out;
  };
  // The trips a card's day cannot hold (its last ones would end after the day) go to the next card, so the day holds
  // the trips the rate asks for: without the carry about 2 % were lost and the gates fell short of the rate.
  let owed = 0;
  for (let k = 0; k < cfg.cardCount; k++) {
    // Poisson-like around the mean: some ride once, some many times.
    const n = Math.max(1, Math.round(cfg.tripsPerCard * (0.5 + rnd()))) + owed;
    const trips = planTrips(cfg.simStart, net.stations[Math.floor(rnd() * net.stations.length)], n);
    owed = n - trips.length;
    if (trips.length) riders.push({ card: cfg.cardFrom + k, twin: false, trips, next: 0, inside: false, at: trips[0].start });
  }
  // ---- injected anomalies: rollbacks (memory copied back after a trip, the card rides again) and clones
  // Planned injections; `injected` gets those that happened (the copy's or the restored card's tap passed).
  const planned: { card: string; kind: 'rollback' | 'clone' }[] = [];
  const injected: { card: string; kind: 'rollback' | 'clone' }[] = [];
  const twins = new Map<number, Uint8Array>();
  const candidates = [...riders];
  // An injected card rides at least three trips, so that its second one can be copied or copied back.
  const pick = (): Rider | undefined => {
    while (candidates.length) {
      const r = candidates.splice(Math.floor(rnd() * candidates.length), 1)[0];
      // A new plan replaces the rider's only when it is long enough: a shorter one (the day too short for it)
      // would leave a rider already in the schedule without the trip it is due to start.
      if (r.trips.length < 3) {
        const longer = planTrips(cfg.simStart, r.trips[0].from, 4);
        if (longer.length >= 3) r.trips = longer;
      }
      if (r.trips.length >= 3) {
        r.at = r.trips[0].start;
        return r;
      }
    }
    return undefined;
  };
  for (let n = 0; n < cfg.rollbacks; n++) {
    const r = pick();
    if (!r) break;
    r.rollbackTrip = 1;
    planned.push({ card: hex(farm.serial(r.card)), kind: 'rollback' });
  }
  const cloneRiders: { rider: Rider; original: Rider; at: number }[] = [];
  for (let n = 0; n < cfg.clones; n++) {
    const r = pick();
    if (!r) break;
    const t = r.trips[1];
    // The copy rides from another station a minute after the original's entry.
    const from = net.stations[(net.stations.indexOf(t.from) + Math.floor(net.stations.length / 2)) % net.stations.length];
    const trips = planTrips(t.start + 60, from, 1);
    if (!trips.length) continue;
    trips[0].start = t.start + 60;
    const twin: Rider = { card: r.card, twin: true, trips, next: 0, inside: false, at: trips[0].start, injection: 'clone' };
    cloneRiders.push({ rider: twin, original: r, at: t.start });
    planned.push({ card: hex(farm.serial(r.card)), kind: 'clone' });
  }

  // The taps the day holds (each trip an entry and an exit, the copies' too): the load offered to the gates.
  const plannedTaps = 2 * (riders.reduce((n, r) => n + r.trips.length, 0) + cloneRiders.reduce((n, c) => n + c.rider.trips.length, 0));

  // ---- gates, journal, uploader
  // Acknowledgements written to the state file at most once a second (each write is a write, an fsync, a rename
  // and a directory fsync; one per upload batch cost about 5 % of a gate thread).
  const journal = GateJournal.openDir(cfg.journalDir, { maxBytes: 1024 * 1024 * 1024, segmentBytes: 8 * 1024 * 1024, ackDelayMs: 1000 });
  const denylist = new DenylistCache({ operator: cfg.operator, suite: 'rsa', roots: [authority.publicKey] });
  let simNow = () => cfg.simStart;
  // A gate serves one card at a time (its queue); its clock is the simulated time of the tap it serves.
  interface Slot {
    gate: OfflineGate;
    queue: Promise<void>;
    clock: { t: number };
  }
  const byStation = new Map<string, Slot[]>();
  const uploaderGates: { gateId: string; client: BackofficeClient; signer: RsaPrivateKey }[] = [];
  const start = await new Promise<{ url: string; t0: number }>((resolve) => parentPort!.once('message', (m: WorkerIn) => m.type === 'start' && resolve(m)));
  for (const g of gates) {
    const clock = { t: cfg.simStart };
    const gate = new OfflineGate({ terminal: { mode: 'sym', masterKeys: [masterKey], authorities: [authority.publicKey], suite: 'rsa', gateId: g.id, station: g.station, clock: () => clock.t }, journal, denylist });
    (byStation.get(g.station) ?? byStation.set(g.station, []).get(g.station)!).push({ gate, queue: Promise.resolve(), clock });
    uploaderGates.push({ gateId: g.id, client: new BackofficeClient({ url: start.url, clientId: g.id, signer: g.key, timeoutMs: 60_000 }), signer: g.key });
  }
  const uploader = new JournalUploader(journal, uploaderGates, denylist, { batchSize: cfg.batchSize, intervalMs: 250, maxDelayMs: 5000, denylistIntervalMs: 2000, concurrency: 4 });
  const speed = cfg.simSpanS / cfg.durationS;
  simNow = () => cfg.simStart + ((Date.now() - start.t0) / 1000) * speed;

  // ---- the event loop of the riders
  const heap: Rider[] = [];
  const push = (r: Rider) => {
    heap.push(r);
    for (let i = heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (heap[p].at <= heap[i].at) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
  };
  const pop = (): Rider | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length && last) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l].at < heap[m].at) m = l;
        if (r < heap.length && heap[r].at < heap[m].at) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  };
  for (const r of riders) push(r);
  const pendingClones = cloneRiders.sort((a, b) => a.at - b.at);

  const progress: WorkerProgress = { index: cfg.index, taps: 0, passes: 0, rejects: {}, journalled: 0, acked: 0, uploadLagMs: 0, uploadErrors: 0, denylistVersion: 0, behindMs: 0, flushes: 0, batches: 0, uploaded: 0 };
  const truth: TapTruth[] = [];
  const appendedAt = new Map<string, number[]>(); // per gate: wall time of each record not yet acknowledged (seq order)
  const latencies: number[] = [];
  let inflight = 0;
  let stopping = false;
  let synced: () => void = () => undefined;
  const syncRequested = new Promise<void>((resolve) => (synced = resolve));
  parentPort!.on('message', (m: WorkerIn) => {
    if (m.type === 'stop') stopping = true;
    else if (m.type === 'sync') synced();
  });

  const tap = async (r: Rider, slot: Slot, direction: 'entry' | 'exit', at: number): Promise<boolean> => {
    const g = slot.gate;
    // Opened over the stored image, not a copy (an in-place usage update writes into it; a rollback's snapshot and a
    // clone's image are slices of their own): two image copies and their garbage less per tap.
    const card = r.twin ? EticketCard.open(MemoryBackend.over(twins.get(r.card)!)) : farm.openInPlace(r.card);
    slot.clock.t = Math.floor(at);
    const t0 = performance.now();
    const out = await g.tap(new CardSession(new EmulatorTransport(card)), direction);
    latencies.push(performance.now() - t0);
    if (r.twin) twins.set(r.card, card.image);
    else farm.save(r.card, card);
    progress.taps++;
    if (out.decision.pass) progress.passes++;
    else progress.rejects[out.decision.reason ?? 'unknown'] = (progress.rejects[out.decision.reason ?? 'unknown'] ?? 0) + 1;
    if (out.record) {
      progress.journalled++;
      (appendedAt.get(g.gateId) ?? appendedAt.set(g.gateId, []).get(g.gateId)!).push(Date.now());
      if (cfg.collectTaps && out.ticket) truth.push({ card: hex(out.ticket.cardSerial), tid: out.ticket.face.tid, seller: sellerOf[r.card - cfg.cardFrom], gate: g.gateId, seq: out.record.seq, station: g.station, direction, time: Math.floor(at), counter: out.receipt?.counter, pass: out.decision.pass, reason: out.decision.reason });
    }
    return out.decision.pass;
  };

  /** Run one rider event on a gate of its station (the gate serves one card at a time). */
  const runEvent = (r: Rider) => {
    const trip = r.trips[r.next];
    const station = r.inside ? trip.to : trip.from;
    const slots = byStation.get(station)!;
    const slot = slots[Math.floor(rnd() * slots.length)];
    inflight++;
    slot.queue = slot.queue.then(async () => {
      try {
        if (!r.inside && !r.twin && r.rollbackTrip === r.next && !r.snapshot) r.snapshot = farm.image(r.card).slice();
        for (const c of pendingClones) if (c.original === r && !r.inside && r.next === 1 && !twins.has(r.card)) twins.set(r.card, farm.image(r.card).slice());
        const ok = await tap(r, slot, r.inside ? 'exit' : 'entry', r.at);
        if (r.injection) {
          if (ok) injected.push({ card: hex(farm.serial(r.card)), kind: r.injection });
          r.injection = undefined;
        }
        if (!ok) {
          // Refused (denylisted, or the card's own state): this trip is abandoned; the rider tries its next one.
          r.inside = false;
          r.next++;
        } else if (r.inside) {
          r.inside = false;
          if (r.snapshot && r.rollbackTrip === r.next) {
            // The memory goes back to before this trip's entry: the card rides again from another station.
            farm.restore(r.card, r.snapshot);
            r.snapshot = undefined;
            const from = net.stations[(net.stations.indexOf(trip.to) + 3) % net.stations.length];
            r.trips.splice(r.next + 1, 0, { from, to: trip.to, start: r.at + 120, travel: Math.round(net.travel(from, trip.to) * 1.2 + 30) });
            r.rollbackTrip = undefined;
            r.injection = 'rollback';
          }
          r.next++;
        } else r.inside = true;
        if (r.next < r.trips.length) {
          const t = r.trips[r.next];
          r.at = r.inside ? t.start + t.travel : Math.max(t.start, r.at + 60);
          push(r);
        }
      } finally {
        inflight--;
      }
    });
  };

  const sampleLag = () => {
    let lag = 0;
    let acked = 0;
    for (const g of uploaderGates) {
      const h = journal.head(g.gateId);
      acked += h.confirmed;
      const times = appendedAt.get(g.gateId);
      if (!times) continue;
      // Records up to h.confirmed are stored: drop their times; the first left is the oldest one waiting.
      const drop = times.length - (h.seq - h.confirmed);
      if (drop > 0) times.splice(0, drop);
      if (times.length) lag = Math.max(lag, Date.now() - times[0]);
    }
    progress.acked = acked;
    progress.uploadLagMs = lag;
    progress.uploadErrors = uploader.stats.errors;
    progress.lastUploadError = uploader.stats.lastError;
    progress.denylistVersion = denylist.version;
    progress.flushes = journal.stats().flushes;
    progress.batches = uploader.stats.batches;
    progress.uploaded = uploader.stats.records;
    if (latencies.length) {
      const s = latencies.splice(0).sort((a, b) => a - b);
      progress.tapLatency = { p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: s[s.length - 1] };
    }
  };
  uploader.start();
  const reporter = setInterval(() => {
    sampleLag();
    post({ type: 'progress', progress });
  }, 1000);

  while ((!stopping || cfg.finishDay) && (heap.length || pendingClones.length || inflight)) {
    const now = simNow();
    while (pendingClones.length && pendingClones[0].at <= now && twins.has(pendingClones[0].original.card)) push(pendingClones.shift()!.rider);
    let started = 0;
    while (heap.length && heap[0].at <= now && inflight < 2000 && started < 500) {
      runEvent(pop()!);
      started++;
    }
    progress.behindMs = heap.length && heap[0].at < now ? ((now - heap[0].at) / speed) * 1000 : 0;
    // Caught up: wake every 5 ms (the taps due by then start together and share the journal's write and fdatasync;
    // 5 ms of wall time is about half a simulated second at the default speed). Behind (a cap hit): go on at once.
    await new Promise((r) => setTimeout(r, started >= 500 || inflight >= 2000 ? 0 : 5));
    // Past the end of the service (an hour's slack), with no tap under way: the day is over. Not so with
    // finishDay: a worker behind the clock (a loaded machine) plays its whole planned day, injections included,
    // however late; the loop ends when nothing is left.
    if (!cfg.finishDay && simNow() > cfg.simStart + cfg.simSpanS + 3600 && !inflight) break;
  }
  // Taps stop; what the gates journalled goes up before the worker reports drained.
  while (inflight) await new Promise((r) => setTimeout(r, 5));
  await journal.drain();
  const drainStart = Date.now();
  uploader.poke();
  for (;;) {
    sampleLag();
    if (uploaderGates.every((g) => journal.head(g.gateId).seq === journal.head(g.gateId).confirmed)) break;
    if (Date.now() - drainStart > 300_000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await uploader.stop();
  await journal.flushAcks();
  sampleLag();
  post({ type: 'drained', progress });
  // The denylist the gates end with: fetched once the back office has matched all it stored (the main thread
  // says so), retried while the service is busy; a gate that cannot get it is an error, not a quiet old version.
  await syncRequested;
  for (let attempt = 1; ; attempt++) {
    try {
      await uploader.syncDenylist();
      break;
    } catch (e) {
      if (attempt >= 10) throw new Error(`the final denylist fetch failed ${attempt} times: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  clearInterval(reporter);
  sampleLag();
  await journal.close();
  post({ type: 'done', progress, injected, planned, plannedTaps, nice, farm: { cards: farm.size, imageBytes: farm.bytes(), heapBytes: farmHeapBytes }, uploadDrainMs: Date.now() - drainStart, truth: cfg.collectTaps ? truth : undefined, tids: cfg.collectTaps ? tids : undefined });
}

main().catch((e) => {
  post({ type: 'error', message: (e as Error).stack ?? String(e) });
});
