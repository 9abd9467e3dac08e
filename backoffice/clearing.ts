// Reports from the matched trips (docs/gates.md "Reports"): the trip report, and clearing and reconciliation per
// seller and day (tickets sold, used, refunded, trip revenue), with the mismatches listed (travel on a ticket
// nobody sold, sold tickets never seen at a gate, records kept apart because they did not verify).

import type { Store } from './store/store.js';

export interface ReportRange {
  /** First day (UTC, inclusive), YYYY-MM-DD. */
  from?: string;
  /** Day after the last (exclusive), YYYY-MM-DD. */
  until?: string;
  seller?: string;
}

export interface TripReportRow {
  day: string;
  seller: string;
  tid: string;
  card: string;
  status: string;
  entryStation?: string;
  entryTime?: string;
  exitStation?: string;
  exitTime?: string;
  fare?: number;
  currency?: string;
  entryGate?: string;
  entrySeq?: number;
  exitGate?: string;
  exitSeq?: number;
}

export interface TripTotals {
  day: string;
  seller: string;
  currency: string;
  trips: number;
  complete: number;
  incomplete: number;
  exitOnly: number;
  open: number;
  revenue: number;
}

export interface ClearingRow {
  seller: string;
  day: string;
  currency: string;
  /** Sale bills that day, and their total. */
  sold: number;
  salesGross: number;
  refunded: number;
  refunds: number;
  /** Distinct tickets of the seller that passed a gate that day. */
  used: number;
  /** Trips that day (by entry) of the seller's per-trip tickets, and what they cost. */
  trips: number;
  incompleteTrips: number;
  tripRevenue: number;
  /** What the seller owes the operator for the day: sales less refunds, plus trip revenue. */
  net: number;
}

export interface Mismatch {
  kind: 'unsold_ticket' | 'never_seen' | 'unverified' | 'wrong_card';
  tid?: string;
  card?: string;
  gate?: string;
  seq?: number;
  seller?: string;
  day?: string;
  detail: string;
}

export interface ClearingReport {
  from?: string;
  until?: string;
  rows: ClearingRow[];
  mismatches: Mismatch[];
  /** Mismatches per kind (the list is capped, the counts are not). */
  mismatchCounts: Record<Mismatch['kind'], number>;
}

const n = (v: unknown) => Number(v ?? 0);
const SELLER = "coalesce(seller_id, '(operator)')";
const T_SELLER = "coalesce(t.seller_id, '(operator)')";
const MAX_LISTED = 1000;

export async function tripReport(store: Store, r: ReportRange, options: { listTrips?: boolean } = {}): Promise<{ totals: TripTotals[]; trips: TripReportRow[] }> {
  const args = [r.from ?? null, r.until ?? null, r.seller ?? null];
  const where = `($1::date IS NULL OR day >= $1::date) AND ($2::date IS NULL OR day < $2::date) AND ($3::text IS NULL OR ${SELLER} = $3)`;
  const totals = (
    await store.db.query(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, ${SELLER} AS seller, coalesce(currency, '') AS currency, count(*)::int AS trips,
              count(*) FILTER (WHERE status = 'complete')::int AS complete, count(*) FILTER (WHERE status = 'incomplete')::int AS incomplete,
              count(*) FILTER (WHERE status = 'exit_only')::int AS exit_only, count(*) FILTER (WHERE status = 'open')::int AS open, coalesce(sum(fare), 0)::float8 AS revenue
       FROM trips WHERE ${where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      args,
    )
  ).rows.map((x) => ({ day: String(x.day), seller: String(x.seller), currency: String(x.currency), trips: n(x.trips), complete: n(x.complete), incomplete: n(x.incomplete), exitOnly: n(x.exit_only), open: n(x.open), revenue: n(x.revenue) }));
  if (!options.listTrips) return { totals, trips: [] };
  const trips = (
    await store.db.query(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, ${SELLER} AS seller, tid, card_serial, status, entry_station, entry_time, exit_station, exit_time, fare, currency, entry_gate, entry_seq, exit_gate, exit_seq
       FROM trips WHERE ${where} ORDER BY day, coalesce(entry_time, exit_time), trip_key`,
      args,
    )
  ).rows.map((x) => ({
    day: String(x.day),
    seller: String(x.seller),
    tid: String(x.tid),
    card: String(x.card_serial),
    status: String(x.status),
    entryStation: (x.entry_station as string | null) ?? undefined,
    entryTime: x.entry_time ? new Date(x.entry_time as string).toISOString() : undefined,
    exitStation: (x.exit_station as string | null) ?? undefined,
    exitTime: x.exit_time ? new Date(x.exit_time as string).toISOString() : undefined,
    fare: x.fare === null ? undefined : n(x.fare),
    currency: (x.currency as string | null) ?? undefined,
    entryGate: (x.entry_gate as string | null) ?? undefined,
    entrySeq: x.entry_seq === null ? undefined : n(x.entry_seq),
    exitGate: (x.exit_gate as string | null) ?? undefined,
    exitSeq: x.exit_seq === null ? undefined : n(x.exit_seq),
  }));
  return { totals, trips };
}

/** Clearing per seller and day, and the reconciliation of what the gates saw against what was sold. */
export async function clearingReport(store: Store, operator: string, r: ReportRange): Promise<ClearingReport> {
  const args = [r.from ?? null, r.until ?? null, r.seller ?? null];
  const q = store.db;
  const rows = new Map<string, ClearingRow>();
  const row = (seller: string, day: string, currency: string) => {
    const k = `${seller}\u0000${day}\u0000${currency}`;
    let x = rows.get(k);
    if (!x) rows.set(k, (x = { seller, day, currency, sold: 0, salesGross: 0, refunded: 0, refunds: 0, used: 0, trips: 0, incompleteTrips: 0, tripRevenue: 0, net: 0 }));
    return x;
  };
  const inRange = (col: string) => `($1::date IS NULL OR ${col} >= $1::date) AND ($2::date IS NULL OR ${col} < $2::date)`;
  for (const b of (
    await q.query(
      `SELECT ${SELLER} AS seller, to_char(sold_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, currency,
              count(*) FILTER (WHERE kind = 'sale')::int AS sold, coalesce(sum(price) FILTER (WHERE kind = 'sale'), 0)::float8 AS gross,
              count(*) FILTER (WHERE kind = 'refund')::int AS refunded, coalesce(sum(price) FILTER (WHERE kind = 'refund'), 0)::float8 AS refunds
       FROM bills WHERE operator = $4 AND ${inRange("(sold_at AT TIME ZONE 'UTC')::date")} AND ($3::text IS NULL OR ${SELLER} = $3) GROUP BY 1, 2, 3`,
      [...args, operator],
    )
  ).rows) {
    const x = row(String(b.seller), String(b.day), String(b.currency));
    Object.assign(x, { sold: n(b.sold), salesGross: n(b.gross), refunded: n(b.refunded), refunds: n(b.refunds) });
  }
  for (const t of (
    await q.query(
      `SELECT ${SELLER} AS seller, to_char(day, 'YYYY-MM-DD') AS day, currency, count(*)::int AS trips, count(*) FILTER (WHERE status IN ('incomplete', 'exit_only'))::int AS incomplete, coalesce(sum(fare), 0)::float8 AS revenue
       FROM trips WHERE operator = $4 AND sold AND per_trip AND ${inRange('day')} AND ($3::text IS NULL OR ${SELLER} = $3) GROUP BY 1, 2, 3`,
      [...args, operator],
    )
  ).rows) {
    const x = row(String(t.seller), String(t.day), String(t.currency));
    Object.assign(x, { trips: n(t.trips), incompleteTrips: n(t.incomplete), tripRevenue: n(t.revenue) });
  }
  for (const u of (
    await q.query(
      `SELECT ${T_SELLER} AS seller, to_char(g.tap_time AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, coalesce(t.currency, 'XXX') AS currency, count(DISTINCT g.tid)::int AS used
       FROM gate_taps g JOIN tickets t ON t.operator = g.operator AND t.tid = g.tid
       WHERE g.pass AND g.operator = $4 AND ${inRange("(g.tap_time AT TIME ZONE 'UTC')::date")} AND ($3::text IS NULL OR ${T_SELLER} = $3) GROUP BY 1, 2, 3`,
      [...args, operator],
    )
  ).rows) {
    row(String(u.seller), String(u.day), String(u.currency)).used = n(u.used);
  }
  for (const x of rows.values()) x.net = x.salesGross - x.refunds + x.tripRevenue;

  const mismatches: Mismatch[] = [];
  const counts: Record<Mismatch['kind'], number> = { unsold_ticket: 0, never_seen: 0, unverified: 0, wrong_card: 0 };
  if (!r.seller) {
    const unsold = await q.query(
      `SELECT g.tid, g.card_serial, g.gate_id, g.seq, to_char(g.tap_time AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM gate_taps g
       WHERE g.pass AND g.operator = $3 AND ${inRange("(g.tap_time AT TIME ZONE 'UTC')::date")} AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.operator = g.operator AND t.tid = g.tid)
       ORDER BY g.tap_time, g.gate_id, g.seq`,
      [args[0], args[1], operator],
    );
    counts.unsold_ticket = unsold.rowCount;
    for (const x of unsold.rows.slice(0, MAX_LISTED)) mismatches.push({ kind: 'unsold_ticket', tid: String(x.tid), card: String(x.card_serial), gate: String(x.gate_id), seq: n(x.seq), day: String(x.day), detail: `a gate passed ticket ${x.tid}, which no seller sold` });
    const quarantined = await q.query(
      `SELECT gate_id, seq, reason, to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM journal_quarantine WHERE ${inRange("(received_at AT TIME ZONE 'UTC')::date")} ORDER BY received_at, quarantine_id`,
      [args[0], args[1]],
    );
    counts.unverified = quarantined.rowCount;
    for (const x of quarantined.rows.slice(0, MAX_LISTED)) mismatches.push({ kind: 'unverified', gate: String(x.gate_id), seq: x.seq === null ? undefined : n(x.seq), day: String(x.day), detail: String(x.reason) });
  }
  const neverSeen = await q.query(
    `SELECT t.tid, t.card_serial, ${T_SELLER} AS seller, to_char(b.sold_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM tickets t JOIN bills b ON b.operator = t.operator AND b.tid = t.tid AND b.issuance = t.issuance AND b.kind = 'sale'
     WHERE t.operator = $4 AND t.status IN ('sealed', 'loaded') AND ${inRange("(b.sold_at AT TIME ZONE 'UTC')::date")} AND ($3::text IS NULL OR ${T_SELLER} = $3)
       AND NOT EXISTS (SELECT 1 FROM gate_taps g WHERE g.pass AND g.operator = t.operator AND g.tid = t.tid)
     ORDER BY b.sold_at, t.tid`,
    [...args, operator],
  );
  counts.never_seen = neverSeen.rowCount;
  for (const x of neverSeen.rows.slice(0, MAX_LISTED)) mismatches.push({ kind: 'never_seen', tid: String(x.tid), card: String(x.card_serial), seller: String(x.seller), day: String(x.day), detail: `ticket ${x.tid} was sold and never passed a gate` });
  const wrongCard = await q.query(
    `SELECT DISTINCT g.tid, g.card_serial, t.card_serial AS sold_to, ${T_SELLER} AS seller FROM gate_taps g JOIN tickets t ON t.operator = g.operator AND t.tid = g.tid
     WHERE g.pass AND g.operator = $4 AND g.card_serial <> t.card_serial AND ${inRange("(g.tap_time AT TIME ZONE 'UTC')::date")} AND ($3::text IS NULL OR ${T_SELLER} = $3) ORDER BY 1, 2`,
    [...args, operator],
  );
  counts.wrong_card = wrongCard.rowCount;
  for (const x of wrongCard.rows.slice(0, MAX_LISTED)) mismatches.push({ kind: 'wrong_card', tid: String(x.tid), card: String(x.card_serial), seller: String(x.seller), detail: `ticket ${x.tid} was sold to card ${x.sold_to} and used on card ${x.card_serial}` });
  return { from: r.from, until: r.until, rows: [...rows.values()].sort((a, b) => (a.seller < b.seller ? -1 : a.seller > b.seller ? 1 : a.day < b.day ? -1 : a.day > b.day ? 1 : a.currency < b.currency ? -1 : 1)), mismatches, mismatchCounts: counts };
}

export interface AnomalyReportRow {
  anomalyId: number;
  kind: string;
  card?: string;
  tid?: string;
  gate?: string;
  detail: string;
  detectedAt: string;
  denylisted: boolean;
}

export async function anomalyReport(store: Store, operator: string, r: { since?: Date } = {}): Promise<AnomalyReportRow[]> {
  const rows = await store.db.query(
    `SELECT a.anomaly_id, a.kind, a.card_serial, a.tid, a.gate_id, a.detail, a.detected_at,
            EXISTS (SELECT 1 FROM denylist d WHERE d.operator = $1 AND d.card_serial = a.card_serial AND d.removed_version IS NULL) AS denylisted
     FROM anomalies a WHERE ($2::timestamptz IS NULL OR a.detected_at >= $2) ORDER BY a.anomaly_id`,
    [operator, r.since ?? null],
  );
  return rows.rows.map((x) => ({ anomalyId: n(x.anomaly_id), kind: String(x.kind), card: (x.card_serial as string | null) ?? undefined, tid: (x.tid as string | null) ?? undefined, gate: (x.gate_id as string | null) ?? undefined, detail: String(x.detail), detectedAt: new Date(x.detected_at as string).toISOString(), denylisted: Boolean(x.denylisted) }));
}
