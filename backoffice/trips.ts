// Trips, fares, clones and rollbacks (docs/gates.md "Trips and fares", "Anomalies"): the matcher takes the
// tickets with new taps, orders each ticket's taps, pairs entries with exits into trips priced by the fare
// table, and looks for what only a copied card image produces; the cards involved go on the denylist.

import { InvalidInputError } from '../sdk/errors.js';
import { decodeTicketFace, PRICING } from '../sdk/ticket.js';
import { denylistAdd } from './denylist.js';
import { analyzeGrownTables, type Queryable } from './store/database.js';
import type { Store } from './store/store.js';

/** Settings (table `settings`) the matcher reads, with their defaults. */
export const TRIP_SETTINGS = {
  /** An entry without an exit becomes an incomplete trip (maximum fare) after this many seconds. */
  incompleteAfter: { name: 'trips.incomplete_after_s', default: 4 * 3600 },
  /** Clock differences between gates tolerated by the travel-time check (seconds). */
  travelSlack: { name: 'trips.travel_slack_s', default: 60 },
} as const;

export interface NetworkInput {
  basis: 'station' | 'zone';
  currency: string;
  /** From and to are station codes (basis station) or zone names (basis zone); a pair counts both ways. */
  fares: { from: string; to: string; fare: number }[];
  /** Station → zone (needed for basis zone). */
  stations?: { station: string; zone?: string }[];
  /** Direct links with their running time; minimum travel times between any two stations follow. */
  links?: { from: string; to: string; seconds: number }[];
  /** Default: the highest fare of the table. */
  maxFare?: number;
  source?: string;
}

/** Shortest running time between every pair of stations (Floyd-Warshall; a network has hundreds of stations). */
export function travelTimes(links: { from: string; to: string; seconds: number }[]): Map<string, Map<string, number>> {
  const names = [...new Set(links.flatMap((l) => [l.from, l.to]))];
  const index = new Map(names.map((n, i) => [n, i]));
  const n = names.length;
  const d = Array.from({ length: n }, (_, i) => Float64Array.from({ length: n }, (_, j) => (i === j ? 0 : Infinity)));
  for (const l of links) {
    if (!Number.isFinite(l.seconds) || l.seconds < 0) throw new InvalidInputError(`link ${l.from}-${l.to}: seconds must be a whole number`);
    const a = index.get(l.from)!;
    const b = index.get(l.to)!;
    d[a][b] = Math.min(d[a][b], l.seconds);
    d[b][a] = Math.min(d[b][a], l.seconds);
  }
  for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (d[i][k] + d[k][j] < d[i][j]) d[i][j] = d[i][k] + d[k][j];
  const out = new Map<string, Map<string, number>>();
  names.forEach((a, i) => out.set(a, new Map(names.map((b, j) => [b, d[i][j]] as [string, number]).filter(([, v]) => Number.isFinite(v)))));
  return out;
}

/** Load a fare table (and the stations and links) as the current one for `operator`. */
export async function loadNetwork(store: Store, operator: string, input: NetworkInput): Promise<{ tableId: number; fares: number; stations: number; travelPairs: number; maxFare: number }> {
  if (!/^[A-Z]{3}$/.test(input.currency)) throw new InvalidInputError('currency is an ISO 4217 code (3 capital letters)');
  if (!input.fares.length) throw new InvalidInputError('a fare table needs at least one fare');
  const zones = new Map((input.stations ?? []).map((s) => [s.station, s.zone]));
  if (input.basis === 'zone') {
    if (!zones.size) throw new InvalidInputError('a zone fare table needs the stations with their zones');
    const known = new Set([...zones.values()]);
    for (const f of input.fares) for (const z of [f.from, f.to]) if (!known.has(z)) throw new InvalidInputError(`fare ${f.from}-${f.to}: no station is in zone ${z}`);
  }
  for (const f of input.fares) if (!Number.isSafeInteger(f.fare) || f.fare < 0) throw new InvalidInputError(`fare ${f.from}-${f.to} must be a whole number of minor units`);
  const maxFare = input.maxFare ?? Math.max(...input.fares.map((f) => f.fare));
  // Both directions, the explicit one winning when a table gives both.
  const pairs = new Map<string, { from: string; to: string; fare: number }>();
  for (const f of input.fares) if (!pairs.has(`${f.to}\u0000${f.from}`)) pairs.set(`${f.to}\u0000${f.from}`, { from: f.to, to: f.from, fare: f.fare });
  for (const f of input.fares) pairs.set(`${f.from}\u0000${f.to}`, f);
  const times = input.links ? travelTimes(input.links) : undefined;
  return store.transaction(async (tx) => {
    for (const s of input.stations ?? []) await tx.query('INSERT INTO stations (operator, station, zone) VALUES ($1, $2, $3) ON CONFLICT (operator, station) DO UPDATE SET zone = excluded.zone', [operator, s.station, s.zone ?? null]);
    const tableId = Number((await tx.query<{ table_id: number }>('INSERT INTO fare_tables (operator, basis, currency, max_fare, source) VALUES ($1, $2, $3, $4, $5) RETURNING table_id', [operator, input.basis, input.currency, maxFare, input.source ?? null])).rows[0].table_id);
    const list = [...pairs.values()];
    await tx.query('INSERT INTO fares (table_id, origin, destination, fare) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])', [tableId, list.map((p) => p.from), list.map((p) => p.to), list.map((p) => p.fare)]);
    let travelPairs = 0;
    if (times) {
      await tx.query('DELETE FROM travel_times WHERE operator = $1', [operator]);
      const o: string[] = [];
      const d: string[] = [];
      const s: number[] = [];
      for (const [a, row] of times) for (const [b, secs] of row) if (a !== b) (o.push(a), d.push(b), s.push(Math.round(secs)));
      await tx.query('INSERT INTO travel_times (operator, origin, destination, seconds) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[])', [operator, o, d, s]);
      travelPairs = s.length;
    }
    return { tableId, fares: list.length, stations: input.stations?.length ?? 0, travelPairs, maxFare };
  });
}

interface Network {
  tableId?: number;
  basis: 'station' | 'zone';
  currency?: string;
  maxFare?: number;
  fares: Map<string, number>;
  zones: Map<string, string>;
  travel: Map<string, number>;
}

export interface Tap {
  gate: string;
  seq: number;
  time: number;
  direction: 'entry' | 'exit';
  station: string;
  card: string;
  counter: number;
  content: string;
}

interface TicketInfo {
  card: string;
  seller: string | null;
  perTrip: boolean;
}

export interface TripRow {
  tripKey: string;
  operator: string;
  tid: string;
  card: string;
  seller: string | null;
  sold: boolean;
  perTrip: boolean;
  entry?: Tap;
  exit?: Tap;
  status: 'open' | 'complete' | 'incomplete' | 'exit_only';
  fare: number | null;
  currency: string | null;
  tableId: number | null;
  day: string;
}

interface AnomalyRow {
  fingerprint: string;
  kind: 'counter_conflict' | 'counter_backwards' | 'double_entry' | 'impossible_travel' | 'wrong_card';
  operator: string;
  tid: string;
  card: string;
  /** Every card the anomaly involves: all go on the denylist. */
  cards: string[];
  first: Tap;
  second: Tap;
  detail: string;
}

/** A trip as stored, in the fields a new matching round compares (bigint columns may come back as text). */
interface StoredTrip {
  status: string;
  exit_seq: number | string | null;
  exit_gate: string | null;
  fare: number | string | null;
  table_id: number | null;
}

export interface MatchResult {
  tickets: number;
  taps: number;
  /** Of the new taps, those taken from this process's memory of what it stored (RecentTaps), not read back. */
  tapsFromMemory: number;
  trips: { inserted: number; updated: number; deleted: number };
  anomalies: { kind: string; card: string; tid: string; detail: string; anomalyId: number }[];
  denylisted: string[];
  denylistVersion?: number;
}

/**
 * PASS taps this process stored, as the matcher reads them, kept so that the matcher need not read back from the
 * store the taps it is handed by the queue: the ingest adds a tap once the transaction that stored it has committed
 * (a stored tap is never changed), the matcher reads from the store only the taps it does not find here (stored by
 * another process, or forgotten). Bounded: past `max` taps the oldest are forgotten.
 */
export class RecentTaps {
  private readonly taps = new Map<string, { operator: string; tid: string; tap: Tap }>();

  /** `max`: the matcher takes taps off the queue within seconds; 30,000 is half a minute at 1,000 taps/s. */
  constructor(private readonly max = 30_000) {}

  add(operator: string, tid: string, tap: Tap): void {
    this.taps.set(`${tap.gate}/${tap.seq}`, { operator, tid, tap });
    if (this.taps.size > this.max) this.taps.delete(this.taps.keys().next().value!);
  }

  /** The tap stored under `key` ('gate/seq', as the queue names it), if this process stored it and still holds it. */
  get(key: string): { operator: string; tid: string; tap: Tap } | undefined {
    return this.taps.get(key);
  }
}

/** A PASS tap as the matcher reads it from gate_taps (TAP_COLUMNS). */
export interface TapRow {
  operator: string;
  tid: string;
  gate_id: string;
  seq: number;
  tap_time: Date;
  direction: 'entry' | 'exit';
  station: string;
  card_serial: string;
  counter: number;
  content: string;
}

// The content digest as hex from the database: it is only compared, and a bytea column costs the embedded store a
// parse into bytes per row.
export const TAP_COLUMNS = `operator, tid, gate_id, seq, tap_time, direction, station, card_serial, counter, encode(content, 'hex') AS content`;

export function tapFromRow(r: TapRow): Tap {
  return { gate: r.gate_id, seq: Number(r.seq), time: new Date(r.tap_time).getTime(), direction: r.direction, station: r.station, card: r.card_serial, counter: Number(r.counter), content: r.content };
}

/** Taps the matcher keeps between rounds (about 250 bytes each); past that it forgets them all and reads again. */
const MAX_KNOWN_TAPS = 2_000_000;
/** On the embedded store, the queue is vacuumed after this many tickets were taken off it. */
const QUEUE_VACUUM_EVERY = 20_000;
const MATCHER_LOCK = 0x54524950; // "TRIP": one matcher at a time on a database; ingest runs beside it
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function fareOf(net: Network, from: string, to: string): number {
  const key = net.basis === 'zone' ? `${net.zones.get(from) ?? '?'}\u0000${net.zones.get(to) ?? '?'}` : `${from}\u0000${to}`;
  // A pair the table does not know is charged as far as the network goes.
  return net.fares.get(key) ?? net.maxFare ?? 0;
}

/** Trips of one ticket from its taps in time order (pure: tests and the simulation's own check use it too). */
export function matchTrips(operator: string, tid: string, taps: Tap[], info: TicketInfo | undefined, net: Network, nowMs: number, incompleteAfterS: number): TripRow[] {
  const out: TripRow[] = [];
  const perTrip = info?.perTrip ?? false;
  const priced = (from: string, to: string) => (perTrip ? fareOf(net, from, to) : null);
  const max = () => (perTrip ? (net.maxFare ?? 0) : null);
  const base = { operator, tid, card: info?.card ?? taps[0]?.card ?? '', seller: info?.seller ?? null, sold: !!info, perTrip, currency: perTrip ? (net.currency ?? null) : null, tableId: perTrip ? (net.tableId ?? null) : null };
  let open: Tap | undefined;
  const close = (entry: Tap, status: 'incomplete' | 'open') => out.push({ ...base, card: entry.card, tripKey: `${entry.gate}/${entry.seq}`, entry, status, fare: status === 'incomplete' ? max() : null, day: day(entry.time) });
  for (const t of taps) {
    if (t.direction === 'entry') {
      if (open) close(open, 'incomplete');
      open = t;
    } else if (open) {
      out.push({ ...base, card: open.card, tripKey: `${open.gate}/${open.seq}`, entry: open, exit: t, status: 'complete', fare: priced(open.station, t.station), day: day(open.time) });
      open = undefined;
    } else {
      out.push({ ...base, card: t.card, tripKey: `${t.gate}/${t.seq}`, exit: t, status: 'exit_only', fare: max(), day: day(t.time) });
    }
  }
  if (open) close(open, nowMs - open.time > incompleteAfterS * 1000 ? 'incomplete' : 'open');
  return out;
}

/** What only a copied card image (or a ticket on another card) produces, in one ticket's taps. */
export function findAnomalies(operator: string, tid: string, taps: Tap[], info: TicketInfo | undefined, net: Network, slackS: number): AnomalyRow[] {
  const out: AnomalyRow[] = [];
  const at = (t: Tap) => `${t.gate}/${t.seq} (${t.station}, ${iso(t.time)}, counter ${t.counter})`;
  const byCounter = new Map<string, Tap[]>();
  for (const t of taps) {
    const k = `${t.card}:${t.counter}`;
    (byCounter.get(k) ?? byCounter.set(k, []).get(k)!).push(t);
  }
  for (const [, list] of byCounter) {
    const other = list.find((t) => t.content !== list[0].content);
    if (other) out.push({ fingerprint: `counter_conflict:${operator}:${tid}:${list[0].card}:${list[0].counter}`, kind: 'counter_conflict', operator, tid, card: list[0].card, cards: [list[0].card], first: list[0], second: other, detail: `card ${list[0].card} gave two different receipts with counter ${list[0].counter}: ${at(list[0])} and ${at(other)}: the card's memory was copied back or copied to a second card` });
  }
  const maxCounter = new Map<string, Tap>();
  let prev: Tap | undefined;
  for (const t of taps) {
    const m = maxCounter.get(t.card);
    // Gate clocks may differ by the slack: two taps closer than that may be in either order.
    if (m && t.counter < m.counter && t.time - m.time > slackS * 1000) out.push({ fingerprint: `counter_backwards:${operator}:${tid}:${t.gate}/${t.seq}`, kind: 'counter_backwards', operator, tid, card: t.card, cards: [t.card], first: m, second: t, detail: `the counter of card ${t.card} went back from ${m.counter} at ${at(m)} to ${t.counter} at ${at(t)}` });
    if (!m || t.counter > m.counter) maxCounter.set(t.card, t);
    if (prev) {
      // Journals arrive late and out of order: an exit not uploaded yet leaves a gap in the counters, which explains
      // two entries in a row. Without a gap (or on two cards) nothing can: the ticket entered twice.
      const gap = prev.card === t.card && t.counter > prev.counter + 1;
      if (prev.direction === 'entry' && t.direction === 'entry' && !gap) out.push({ fingerprint: `double_entry:${operator}:${tid}:${t.gate}/${t.seq}`, kind: 'double_entry', operator, tid, card: t.card, cards: [...new Set([prev.card, t.card])], first: prev, second: t, detail: `ticket ${tid} entered at ${at(prev)} and again at ${at(t)} without an exit between` });
      const need = prev.station === t.station ? 0 : net.travel.get(`${prev.station}\u0000${t.station}`);
      if (need !== undefined && need > 0 && (t.time - prev.time) / 1000 < need - slackS) {
        out.push({ fingerprint: `impossible_travel:${operator}:${tid}:${t.gate}/${t.seq}`, kind: 'impossible_travel', operator, tid, card: t.card, cards: [...new Set([prev.card, t.card])], first: prev, second: t, detail: `ticket ${tid} at ${at(prev)} then ${at(t)}: ${Math.round((t.time - prev.time) / 1000)} s apart, the fastest journey takes ${need} s` });
      }
    }
    prev = t;
  }
  if (info) {
    for (const card of new Set(taps.map((t) => t.card))) {
      if (card === info.card) continue;
      const t = taps.find((x) => x.card === card)!;
      out.push({ fingerprint: `wrong_card:${operator}:${tid}:${card}`, kind: 'wrong_card', operator, tid, card, cards: [card], first: t, second: t, detail: `ticket ${tid} was sold to card ${info.card}, and card ${card} used it at ${at(t)}` });
    }
  }
  return out;
}

async function settingNumber(q: Queryable, s: { name: string; default: number }): Promise<number> {
  const v = (await q.query<{ value: string }>('SELECT value FROM settings WHERE name = $1', [s.name])).rows[0]?.value;
  return v === undefined ? s.default : Number(v);
}

export async function setTripSetting(store: Store, key: keyof typeof TRIP_SETTINGS, seconds: number): Promise<void> {
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new InvalidInputError(`${TRIP_SETTINGS[key].name} must be whole seconds`);
  await store.db.query('INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [TRIP_SETTINGS[key].name, String(seconds)]);
}

/** The matcher: one process at a time on a database works through the queue of tickets with new taps. */
export class TripMatcher {
  private net?: Network;
  private readonly tickets = new Map<string, TicketInfo | null>();
  /** Each ticket's PASS taps as of this process's last matching round (generation), for incremental matching. */
  private readonly known = new Map<string, Tap[]>();
  /**
   * Each ticket's trips as this process last wrote them (same lifetime as `known`): a ticket whose taps are known
   * is diffed against these instead of its trips read back, a read that grows with the ticket's trips (a pass rides
   * many). Trusted under the same rule as the taps: no other round (nor another process's sweep) in between.
   */
  private readonly knownTrips = new Map<string, Map<string, StoredTrip>>();
  private knownTaps = 0;
  /** Tickets taken off the queue since it was last vacuumed (embedded store). */
  private dequeued = 0;
  private generation = -1;

  constructor(
    private readonly store: Store,
    readonly operator: string,
    private readonly now: () => number = () => Date.now(),
    private readonly recent?: RecentTaps,
  ) {}

  private async network(q: Queryable): Promise<Network> {
    const current = (await q.query<{ table_id: number; basis: string; currency: string; max_fare: number }>('SELECT table_id, basis, currency, max_fare FROM fare_tables WHERE operator = $1 ORDER BY table_id DESC LIMIT 1', [this.operator])).rows[0];
    const travelCount = Number((await q.query<{ n: number }>('SELECT count(*)::int AS n FROM travel_times WHERE operator = $1', [this.operator])).rows[0].n);
    if (this.net && this.net.tableId === (current ? Number(current.table_id) : undefined) && this.net.travel.size === travelCount) return this.net;
    const net: Network = { basis: 'station', fares: new Map(), zones: new Map(), travel: new Map() };
    if (current) {
      Object.assign(net, { tableId: Number(current.table_id), basis: current.basis, currency: current.currency, maxFare: Number(current.max_fare) });
      for (const f of (await q.query<{ origin: string; destination: string; fare: number }>('SELECT origin, destination, fare FROM fares WHERE table_id = $1', [net.tableId])).rows) net.fares.set(`${f.origin}\u0000${f.destination}`, Number(f.fare));
    }
    for (const s of (await q.query<{ station: string; zone: string | null }>('SELECT station, zone FROM stations WHERE operator = $1', [this.operator])).rows) if (s.zone) net.zones.set(s.station, s.zone);
    for (const t of (await q.query<{ origin: string; destination: string; seconds: number }>('SELECT origin, destination, seconds FROM travel_times WHERE operator = $1', [this.operator])).rows) net.travel.set(`${t.origin}\u0000${t.destination}`, Number(t.seconds));
    this.net = net;
    return net;
  }

  private async ticketInfo(q: Queryable, keys: [string, string][]): Promise<Map<string, TicketInfo | undefined>> {
    const out = new Map<string, TicketInfo | undefined>();
    const missing = keys.filter(([o, t]) => {
      const k = `${o}\u0000${t}`;
      if (!this.tickets.has(k)) return true;
      out.set(k, this.tickets.get(k) ?? undefined);
      return false;
    });
    if (missing.length) {
      const r = await q.query<{ operator: string; tid: string; card_serial: string; seller_id: string | null; face: Uint8Array }>(
        'SELECT operator, tid, card_serial, seller_id, face FROM tickets WHERE (operator, tid) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
        [missing.map((k) => k[0]), missing.map((k) => k[1])],
      );
      for (const row of r.rows) {
        const face = decodeTicketFace(new Uint8Array(row.face));
        const info = { card: row.card_serial, seller: row.seller_id, perTrip: face.pricing === PRICING.PER_TRIP };
        out.set(`${row.operator}\u0000${row.tid}`, info);
        if (this.tickets.size > 200_000) this.tickets.clear();
        this.tickets.set(`${row.operator}\u0000${row.tid}`, info);
      }
      // Unsold tickets are not cached: a sale recorded later must be seen.
    }
    return out;
  }

  /**
   * Work through up to `limit` queued tickets. Returns undefined when another process is matching right now
   * (the queue waits for it). Each ticket's trips are worked out from all its taps, so taps arriving late or
   * out of order give the same trips as taps in order.
   */
  async matchPending(limit = 500): Promise<MatchResult | undefined> {
    // What this round learns of each ticket's taps is kept only once its transaction has committed.
    const learned = new Map<string, Tap[]>();
    const learnedTrips = new Map<string, Map<string, StoredTrip>>();
    let generation: number | undefined;
    let outcome: MatchResult | undefined;
    try {
      outcome = await this.store.transaction(async (tx) => {
        // The store may run this again after a rollback (PostgreSQL retries a deadlock): nothing an attempt that
        // rolled back learned is kept; its batch may hold tickets another process has matched since.
        learned.clear();
        learnedTrips.clear();
        if (!(await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [MATCHER_LOCK])).rows[0].ok) return undefined;
        // Under the lock: this round's number. Another number than the one after our last round: another process
        // matched in between, so the taps this process kept may lack some it took off the queue; forget them all.
        generation = await bumpGeneration(tx);
        if (generation !== this.generation + 1) this.forget();
        const batch = (await tx.query<{ operator: string; tid: string; taps: string[] | null }>('DELETE FROM match_queue WHERE (operator, tid) IN (SELECT operator, tid FROM match_queue ORDER BY queued_at LIMIT $1) RETURNING operator, tid, taps', [limit])).rows;
        const result: MatchResult = { tickets: batch.length, taps: 0, tapsFromMemory: 0, trips: { inserted: 0, updated: 0, deleted: 0 }, anomalies: [], denylisted: [] };
        if (!batch.length) return result;
        const net = await this.network(tx);
        const incompleteAfter = await settingNumber(tx, TRIP_SETTINGS.incompleteAfter);
        const slack = await settingNumber(tx, TRIP_SETTINGS.travelSlack);
        // Incremental: a ticket whose earlier taps this process holds reads only the taps queued with it since; any
        // other (first seen, forgotten, or queued before migration 6) reads all of its taps. Either way the trips
        // are worked out from all of them, so late and out-of-order taps give the same trips as before.
        const full = batch.filter((b) => b.taps === null || !this.known.has(`${b.operator}\u0000${b.tid}`));
        // The fresh taps this process stored itself are at hand (RecentTaps); only the others are read.
        const fresh: { gate: string; seq: number }[] = [];
        const handy: { operator: string; tid: string; tap: Tap }[] = [];
        for (const b of batch) {
          if (b.taps === null || !this.known.has(`${b.operator}\u0000${b.tid}`)) continue;
          for (const key of b.taps) {
            const hit = this.recent?.get(key);
            if (hit && hit.operator === b.operator && hit.tid === b.tid) {
              handy.push(hit);
              continue;
            }
            const at = key.lastIndexOf('/');
            fresh.push({ gate: key.slice(0, at), seq: Number(key.slice(at + 1)) });
          }
        }
        const tapRows = [
          ...(full.length
            ? (await tx.query<TapRow>(`SELECT ${TAP_COLUMNS} FROM gate_taps WHERE pass AND (operator, tid) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, [full.map((b) => b.operator), full.map((b) => b.tid)])).rows
            : []),
          ...(fresh.length
            ? (await tx.query<TapRow>(`SELECT ${TAP_COLUMNS} FROM gate_taps WHERE pass AND (gate_id, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`, [fresh.map((f) => f.gate), fresh.map((f) => f.seq)])).rows
            : []),
        ];
        const byTicket = new Map<string, Tap[]>();
        for (const b of batch) {
          const k = `${b.operator}\u0000${b.tid}`;
          if (b.taps !== null && this.known.has(k)) byTicket.set(k, [...this.known.get(k)!]);
        }
        const take = (operator: string, tid: string, tap: Tap) => {
          const k = `${operator}\u0000${tid}`;
          const list = byTicket.get(k) ?? byTicket.set(k, []).get(k)!;
          // A tap already held (queued twice) counts once.
          if (!list.some((t) => t.seq === tap.seq && t.gate === tap.gate)) list.push(tap);
        };
        for (const r of tapRows) take(r.operator, r.tid, tapFromRow(r));
        for (const h of handy) take(h.operator, h.tid, h.tap);
        result.tapsFromMemory = handy.length;
        for (const b of batch) {
          const k = `${b.operator}\u0000${b.tid}`;
          learned.set(k, byTicket.get(k) ?? []);
          result.taps += byTicket.get(k)?.length ?? 0;
        }
        const infos = await this.ticketInfo(tx, batch.map((b) => [b.operator, b.tid]));
        const existing = new Map<string, StoredTrip>();
        const unread = batch.filter((b) => {
          const k = `${b.operator}\u0000${b.tid}`;
          const held = b.taps !== null && this.known.has(k) ? this.knownTrips.get(k) : undefined;
          if (held) for (const [key, t] of held) existing.set(key, t);
          return !held;
        });
        if (unread.length) {
          const rows = (await tx.query<StoredTrip & { trip_key: string }>('SELECT trip_key, status, exit_seq, exit_gate, fare, table_id FROM trips WHERE (operator, tid) IN (SELECT * FROM unnest($1::text[], $2::text[]))', [unread.map((b) => b.operator), unread.map((b) => b.tid)])).rows;
          for (const r of rows) existing.set(r.trip_key, r);
        }
        const trips: TripRow[] = [];
        const anomalies: AnomalyRow[] = [];
        const nowMs = this.now();
        for (const b of batch) {
          const k = `${b.operator}\u0000${b.tid}`;
          const taps = (byTicket.get(k) ?? []).sort((x, y) => x.time - y.time || x.counter - y.counter || (x.gate < y.gate ? -1 : x.gate > y.gate ? 1 : x.seq - y.seq));
          const info = infos.get(k);
          trips.push(...matchTrips(b.operator, b.tid, taps, info, net, nowMs, incompleteAfter));
          anomalies.push(...findAnomalies(b.operator, b.tid, taps, info, net, slack));
        }
        // Write only what changed: most batches extend a ticket's last trip and leave the others as they were.
        const keep = new Set(trips.map((t) => t.tripKey));
        const gone = [...existing.keys()].filter((k) => !keep.has(k));
        if (gone.length) result.trips.deleted = (await tx.query('DELETE FROM trips WHERE trip_key = ANY($1::text[])', [gone])).rowCount;
        const changed = trips.filter((t) => {
          const e = existing.get(t.tripKey);
          if (!e) return true;
          return e.status !== t.status || (e.exit_gate ?? null) !== (t.exit?.gate ?? null) || (e.exit_seq === null ? null : Number(e.exit_seq)) !== (t.exit?.seq ?? null) || (e.fare === null ? null : Number(e.fare)) !== t.fare || (e.table_id === null ? null : Number(e.table_id)) !== t.tableId;
        });
        for (const t of changed) existing.has(t.tripKey) ? result.trips.updated++ : result.trips.inserted++;
        if (changed.length) await upsertTrips(tx, changed);
        for (const b of batch) learnedTrips.set(`${b.operator}\u0000${b.tid}`, new Map());
        for (const t of trips) learnedTrips.get(`${t.operator}\u0000${t.tid}`)!.set(t.tripKey, { status: t.status, exit_seq: t.exit?.seq ?? null, exit_gate: t.exit?.gate ?? null, fare: t.fare, table_id: t.tableId });
        if (anomalies.length) {
          const inserted = (
            await tx.query<{ anomaly_id: number; fingerprint: string }>(
              `INSERT INTO anomalies (fingerprint, kind, operator, tid, card_serial, first_gate, first_seq, second_gate, second_seq, detail)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::bigint[], $10::text[])
               ON CONFLICT (fingerprint) DO NOTHING RETURNING anomaly_id, fingerprint`,
              [
                anomalies.map((a) => a.fingerprint),
                anomalies.map((a) => a.kind),
                anomalies.map((a) => a.operator),
                anomalies.map((a) => a.tid),
                anomalies.map((a) => a.card),
                anomalies.map((a) => a.first.gate),
                anomalies.map((a) => a.first.seq),
                anomalies.map((a) => a.second.gate),
                anomalies.map((a) => a.second.seq),
                anomalies.map((a) => a.detail),
              ],
            )
          ).rows;
          const byFp = new Map(anomalies.map((a) => [a.fingerprint, a]));
          const listed: { card: string; reason: string; anomalyId: number }[] = [];
          for (const row of inserted) {
            const a = byFp.get(row.fingerprint)!;
            result.anomalies.push({ kind: a.kind, card: a.card, tid: a.tid, detail: a.detail, anomalyId: Number(row.anomaly_id) });
            for (const card of a.cards) listed.push({ card, reason: `${a.kind}: ${a.detail}`, anomalyId: Number(row.anomaly_id) });
          }
          if (listed.length) {
            const d = await denylistAdd(tx, this.operator, listed, `anomalies ${[...new Set(inserted.map((r) => Number(r.anomaly_id)))].join(',')}`.slice(0, 200));
            result.denylisted = d.added;
            result.denylistVersion = d.version;
          }
        }
        return result;
      });
    } catch (e) {
      // A round that failed may have taken tickets whose taps we did not keep: trust nothing kept.
      this.forget();
      this.generation = -1;
      throw e;
    }
    if (outcome === undefined || generation === undefined) return outcome;
    // The generation and what the round learned are kept together, with nothing awaited between: a generation kept
    // without the taps the round took off the queue would have the next round trust a memory that lacks them.
    this.generation = generation;
    for (const [k, taps] of learned) {
      if (this.knownTaps > MAX_KNOWN_TAPS) this.forget();
      this.knownTaps += taps.length - (this.known.get(k)?.length ?? 0);
      this.known.set(k, taps);
      this.knownTrips.set(k, learnedTrips.get(k)!);
    }
    this.dequeued += outcome.tickets;
    if (this.store.engine === 'pglite' && this.dequeued >= QUEUE_VACUUM_EVERY) {
      // The embedded store runs no autovacuum (one process, no background workers): without this the queue's dead
      // rows pile up, and taking the oldest tickets off it scanned them all (its cost grew through a 10-minute run).
      this.dequeued = 0;
      await this.store.db.exec('VACUUM match_queue');
      // Nor any autoanalyze: the taps and trips tables the run filled get their planner statistics here.
      await analyzeGrownTables(this.store.db);
    }
    return outcome;
  }

  private forget(): void {
    this.known.clear();
    this.knownTrips.clear();
    this.knownTaps = 0;
  }

  /**
   * Open trips whose entry is older than the configured time become incomplete (maximum fare). A sweep that changes
   * trips counts as a matching round (the generation): matchers in other processes forget the trips they hold; this
   * one, when no other round came between, forgets only the tickets swept.
   */
  async sweep(): Promise<number> {
    const after = await settingNumber(this.store.db, TRIP_SETTINGS.incompleteAfter);
    const net = await this.network(this.store.db);
    const swept = await this.store.transaction(async (tx) => {
      // The generation row first, as a matching round takes it: a round holds it while it writes trips, so a sweep
      // that locked trips and then waited for it would deadlock with a round writing one of those trips.
      await tx.query(`INSERT INTO settings (name, value) VALUES ('trips.matcher_generation', '0') ON CONFLICT (name) DO NOTHING`);
      await tx.query(`SELECT value FROM settings WHERE name = 'trips.matcher_generation' FOR UPDATE`);
      const r = await tx.query<{ operator: string; tid: string }>(
        `UPDATE trips SET status = 'incomplete', fare = CASE WHEN per_trip THEN $3::bigint END, currency = CASE WHEN per_trip THEN $4::text END, table_id = CASE WHEN per_trip THEN $5::int END
         WHERE operator = $1 AND status = 'open' AND entry_time < $2 RETURNING operator, tid`,
        [this.operator, new Date(this.now() - after * 1000), net.maxFare ?? 0, net.currency ?? null, net.tableId ?? null],
      );
      if (!r.rows.length) return { rows: r.rows };
      return { rows: r.rows, generation: await bumpGeneration(tx) };
    });
    if (swept.generation !== undefined) {
      if (swept.generation === this.generation + 1) {
        this.generation = swept.generation;
        for (const s of swept.rows) {
          const k = `${s.operator}\u0000${s.tid}`;
          this.knownTaps -= this.known.get(k)?.length ?? 0;
          this.known.delete(k);
          this.knownTrips.delete(k);
        }
      } else this.forget();
    }
    return swept.rows.length;
  }

  /** Queued tickets not matched yet (the simulation's lag). */
  async backlog(): Promise<number> {
    return Number((await this.store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM match_queue')).rows[0].n);
  }
}

/** The next matching round's number (under the row lock of the setting, until the transaction ends). */
async function bumpGeneration(tx: Queryable): Promise<number> {
  return Number(
    (await tx.query<{ value: string }>(`INSERT INTO settings (name, value) VALUES ('trips.matcher_generation', '1') ON CONFLICT (name) DO UPDATE SET value = (settings.value::bigint + 1)::text RETURNING value`)).rows[0].value,
  );
}

async function upsertTrips(q: Queryable, trips: TripRow[]): Promise<void> {
  const c = <T>(f: (t: TripRow) => T) => trips.map(f);
  await q.query(
    `INSERT INTO trips (trip_key, operator, tid, card_serial, seller_id, sold, per_trip, entry_gate, entry_seq, entry_station, entry_time, exit_gate, exit_seq, exit_station, exit_time, status, fare, currency, table_id, day)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[], $8::text[], $9::bigint[], $10::text[], $11::timestamptz[], $12::text[], $13::bigint[], $14::text[], $15::timestamptz[], $16::text[], $17::bigint[], $18::text[], $19::int[], $20::date[])
     ON CONFLICT (trip_key) DO UPDATE SET card_serial = excluded.card_serial, seller_id = excluded.seller_id, sold = excluded.sold, per_trip = excluded.per_trip,
       entry_gate = excluded.entry_gate, entry_seq = excluded.entry_seq, entry_station = excluded.entry_station, entry_time = excluded.entry_time,
       exit_gate = excluded.exit_gate, exit_seq = excluded.exit_seq, exit_station = excluded.exit_station, exit_time = excluded.exit_time,
       status = excluded.status, fare = excluded.fare, currency = excluded.currency, table_id = excluded.table_id, day = excluded.day`,
    [
      c((t) => t.tripKey),
      c((t) => t.operator),
      c((t) => t.tid),
      c((t) => t.card),
      c((t) => t.seller),
      c((t) => t.sold),
      c((t) => t.perTrip),
      c((t) => t.entry?.gate ?? null),
      c((t) => t.entry?.seq ?? null),
      c((t) => t.entry?.station ?? null),
      c((t) => (t.entry ? new Date(t.entry.time) : null)),
      c((t) => t.exit?.gate ?? null),
      c((t) => t.exit?.seq ?? null),
      c((t) => t.exit?.station ?? null),
      c((t) => (t.exit ? new Date(t.exit.time) : null)),
      c((t) => t.status),
      c((t) => t.fare),
      c((t) => t.currency),
      c((t) => t.tableId),
      c((t) => t.day),
    ],
  );
}
