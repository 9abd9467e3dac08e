// Offline gates from the command line (docs/gates.md): `journal show | upload`, `fares load`, `match`,
// `denylist show | add | remove`, and the reports `report trips | clearing | anomalies`.

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
// The back office, the journal, keys and the HTTP client load when a command runs, never for --help
// (test/cli-lazy.test.ts): each action imports what it uses.
import type { ClearingRow, TripReportRow, TripTotals } from '../../backoffice/clearing.js';
import type { NetworkInput } from '../../backoffice/trips.js';
import { hex } from '../../sdk/bytes.js';
import type { ClientIdentity } from '../../sdk/roles/client-credential.js';
import type { DenylistTrust } from '../../sdk/roles/denylist.js';
import { intArg } from './cmd-card.js';
import { parseCsv } from './csv.js';
import { emit, globals, UsageError, workDir } from './context.js';
import type { WorkDir } from './workdir.js';

/** Where a gate keeps its journal and its denylist: <working directory>/journal/<gate id>/ unless --journal says. */
export function journalDir(w: WorkDir, gateId: string, given?: string): string {
  return given ? resolve(given) : join(w.dir, 'journal', gateId);
}

export function denylistTrust(w: WorkDir): DenylistTrust {
  return { operator: w.config.operator, suite: w.config.suite, roots: [w.authorityPublicKey] };
}

/** The gate's client identity for the back office: its credential file, opened with $ETICKET_CLIENT_PASSPHRASE. */
export async function gateCredential(file: string): Promise<ClientIdentity> {
  const pass = process.env.ETICKET_CLIENT_PASSPHRASE;
  if (!pass) throw new UsageError('set ETICKET_CLIENT_PASSPHRASE: it opens the gate\'s credential file');
  const { loadCredential } = await import('../../sdk/roles/client-credential.js');
  const id = loadCredential(file, pass);
  if (id.role !== 'terminal') throw new UsageError(`${file} is a ${id.role}'s credential, not a gate's`);
  return id;
}

/** Seconds from "90", "90s", "15m", "4h". */
export function durationArg(v: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError('a duration is seconds, or a number with s, m or h (e.g. 4h)');
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

function dayArg(name: string) {
  return (v: string) => {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || !Number.isFinite(Date.parse(`${v}T00:00:00Z`))) throw new InvalidArgumentError(`${name} is YYYY-MM-DD`);
    return v;
  };
}

/** A CSV file with a header row, as objects keyed by the (trimmed, lower-case) column names. */
function readCsvTable(file: string, required: string[]): Record<string, string>[] {
  if (!existsSync(file)) throw new UsageError(`${file} does not exist`);
  const records = parseCsv(readFileSync(file, 'utf8'));
  const header = records.shift();
  if (!header || 'error' in header) throw new UsageError(`${file}: no header row`);
  const cols = header.fields.map((c) => c.trim().toLowerCase());
  for (const r of required) if (!cols.includes(r)) throw new UsageError(`${file}: the header needs a column "${r}" (it has ${cols.join(', ')})`);
  return records.map((r) => {
    if ('error' in r) throw new UsageError(`${file} line ${r.line}: ${r.error}`);
    if (r.fields.length !== cols.length) throw new UsageError(`${file} line ${r.line}: ${r.fields.length} fields, the header has ${cols.length}`);
    return Object.fromEntries(cols.map((c, i) => [c, r.fields[i].trim()]));
  });
}

function whole(file: string, v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`${file}: ${what} "${v}" is not a whole number`);
  return Number(v);
}

function csvCell(v: unknown): string {
  const s = v === undefined || v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function printTable<T>(format: string, rows: T[], columns: [string, (r: T) => unknown][], empty: string): void {
  if (format === 'csv') {
    console.log(columns.map((c) => c[0]).join(','));
    for (const r of rows) console.log(columns.map((c) => csvCell(c[1](r))).join(','));
    return;
  }
  if (!rows.length) return void console.log(empty);
  const cells = rows.map((r) => columns.map((c) => String(c[1](r) ?? '')));
  const widths = columns.map((c, i) => Math.max(c[0].length, ...cells.map((x) => x[i].length)));
  console.log(columns.map((c, i) => c[0].padEnd(widths[i])).join('  '));
  for (const x of cells) console.log(x.map((v, i) => (/^-?\d+$/.test(v) ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  '));
}

function reportFormat(cmd: Command, given?: string): 'table' | 'csv' | 'json' {
  const f = given ?? (globals(cmd).json ? 'json' : 'table');
  if (f !== 'table' && f !== 'csv' && f !== 'json') throw new UsageError('--format is table, csv or json');
  return f;
}

export function registerOffline(program: Command): void {
  const journal = program.command('journal').description("a gate's tap journal: show it, upload it").addHelpText('after', '\nExample:\n  $ eticket journal show --gate-id A01-G1\n  $ eticket journal upload --credential gate.json --backoffice http://127.0.0.1:8080');
  journal
    .command('show')
    .description('list the records of a journal (read-only; works while the gate runs)')
    .option('--gate-id <id>', 'the gate whose journal (default CLI)', 'CLI')
    .option('--journal <dir>', 'journal directory (default <working directory>/journal/<gate id>)')
    .option('--from <seq>', 'first seq to show', intArg('from'))
    .option('--limit <n>', 'at most this many records', intArg('limit'))
    .addHelpText('after', '\nOne line per record: seq, time, station, direction, PASS/REJECT [reason], ticket, card, counter, denylist version,\nthen the checkpoints. A torn tail (a crash mid-write) is reported and skipped; the gate cuts it off when it opens.\n\nExample:\n  $ eticket journal show --gate-id A01-G1 --from 120 --limit 10\n  $ eticket --json journal show --gate-id A01-G1')
    .action(async (opts: { gateId: string; journal?: string; from?: number; limit?: number }, cmd: Command) => {
      const { FileJournalBackend, GateJournal } = await import('../journal.js');
      const dir = opts.journal ? resolve(opts.journal) : join((await workDir(cmd)).dir, 'journal', opts.gateId);
      if (!existsSync(dir)) throw new UsageError(`no journal at ${dir}`);
      const { entries, state, problems } = GateJournal.readEntries(new FileJournalBackend(dir, false));
      let taps = entries.flatMap((e) => (e.kind === 'tap' ? [e.record] : [])).filter((r) => opts.from === undefined || r.seq >= opts.from);
      if (opts.limit !== undefined) taps = taps.slice(0, opts.limit);
      const checkpoints = entries.flatMap((e) => (e.kind === 'checkpoint' ? [e.checkpoint] : []));
      if (globals(cmd).json) {
        console.log(
          JSON.stringify({
            journal: dir,
            acknowledged: state.gates,
            problems,
            records: taps.map((r) => ({ gate: r.gateId, seq: r.seq, time: new Date(r.time).toISOString(), station: r.station, direction: r.direction, pass: r.pass, reason: r.reason, mode: r.mode, operator: r.operator, tid: r.tid, card: r.cardSerial && hex(r.cardSerial), counter: r.counter, denylistVersion: r.denylistVersion, realName: r.realName, receipt: r.receipt && hex(r.receipt), hash: hex(r.hash) })),
            checkpoints: checkpoints.map((c) => ({ gate: c.gateId, seq: c.seq, head: hex(c.head), time: new Date(c.time).toISOString() })),
          }),
        );
        return;
      }
      for (const r of taps) console.log(`${r.gateId} #${r.seq} ${new Date(r.time).toISOString()} ${r.station} ${r.direction} ${r.pass ? 'PASS' : `REJECT [${r.reason}]`} ${r.tid ?? '-'} ${r.cardSerial ? hex(r.cardSerial) : '-'} counter ${r.counter ?? '-'} denylist v${r.denylistVersion}${r.realName ? ` real-name ${r.realName}` : ''}`);
      for (const c of checkpoints) console.log(`checkpoint ${c.gateId} #${c.seq} ${hex(c.head).slice(0, 16)}… signed ${new Date(c.time).toISOString()}`);
      for (const [g, s] of Object.entries(state.gates)) console.log(`acknowledged by the back office: ${g} up to #${s.acked}`);
      for (const p of problems) console.log(`problem: ${p}`);
      if (!taps.length && !checkpoints.length) console.log('no records');
    });
  journal
    .command('upload')
    .description("upload a gate's journal to the back office now (resumes where the last acknowledged batch ended) and fetch the denylist")
    .requiredOption('--credential <file>', "the gate's credential file (`eticket terminal add --kind gate`); $ETICKET_CLIENT_PASSPHRASE opens it")
    .requiredOption('--backoffice <url>', 'the back office API, e.g. http://127.0.0.1:8080')
    .option('--journal <dir>', 'journal directory (default <working directory>/journal/<gate id>)')
    .option('--batch <n>', 'records per request', intArg('batch'), 200)
    .addHelpText('after', '\nExit 0 when everything was acknowledged; exit 3 when the back office cannot be reached (nothing is lost:\nrun it again). Each record is stored once however often it is sent.\n\nExample:\n  $ ETICKET_CLIENT_PASSPHRASE=... eticket journal upload --credential A01-G1.json --backoffice http://127.0.0.1:8080')
    .action(async (opts: { credential: string; backoffice: string; journal?: string; batch: number }, cmd: Command) => {
      const { BackofficeClient } = await import('../backoffice-client.js');
      const { DenylistCache } = await import('../denylist.js');
      const { GateJournal } = await import('../journal.js');
      const { JournalUploader } = await import('../journal-uploader.js');
      if (opts.batch < 1 || opts.batch > 2000) throw new UsageError('--batch is 1..2000');
      const w = await workDir(cmd);
      const id = await gateCredential(opts.credential);
      const dir = journalDir(w, id.clientId, opts.journal);
      const j = GateJournal.openDir(dir);
      try {
        const client = new BackofficeClient({ url: opts.backoffice, clientId: id.clientId, signer: id.signer });
        const denylist = new DenylistCache(denylistTrust(w), join(dir, 'denylist.json'));
        const up = new JournalUploader(j, [{ gateId: id.clientId, client, signer: id.signer }], denylist, { batchSize: opts.batch });
        const before = j.head(id.clientId);
        const stats = await up.uploadAll();
        const after = j.head(id.clientId);
        emit(cmd, { ok: true, gate: id.clientId, acknowledged: after.acked, sent: stats.records, stored: stats.stored, duplicates: stats.duplicates, quarantined: stats.quarantined, denylistVersion: denylist.version }, `${id.clientId}: ${after.acked - before.acked} record(s) acknowledged (through #${after.acked}; ${stats.stored} new, ${stats.duplicates} already there, ${stats.quarantined} kept apart); denylist v${denylist.version} (${denylist.size} card(s))`);
      } finally {
        await j.close();
      }
    });

  const fares = program.command('fares').description('the fare table and the network the trips are priced and checked with').addHelpText('after', '\nExample:\n  $ eticket fares load --fares fares.csv --links links.csv');
  fares
    .command('load')
    .description('load a fare table (by station pair, or by zone pair with --zones) as the current one')
    .requiredOption('--fares <file>', 'CSV with columns from,to,fare (minor units); a pair counts both ways')
    .option('--zones <file>', 'CSV station,zone: the fares are then between zones')
    .option('--links <file>', 'CSV from,to,seconds: running times between neighbouring stations (the fastest journey bounds the travel check)')
    .option('--currency <code>', 'currency of the fares', 'CNY')
    .option('--max-fare <minor>', 'fare of an incomplete trip (default: the highest of the table)', intArg('max-fare'))
    .option('--incomplete-after <duration>', 'an entry without an exit after this long is an incomplete trip (e.g. 4h)', durationArg)
    .option('--travel-slack <duration>', 'clock difference between gates the travel check tolerates (e.g. 60s)', durationArg)
    .addHelpText('after', '\nExample:\n  $ eticket fares load --fares fares.csv --links links.csv --incomplete-after 4h\n  $ eticket fares load --fares zone-fares.csv --zones zones.csv --currency CNY')
    .action(async (opts: { fares: string; zones?: string; links?: string; currency: string; maxFare?: number; incompleteAfter?: number; travelSlack?: number }, cmd: Command) => {
      const { loadNetwork, setTripSetting } = await import('../../backoffice/trips.js');
      const { withBackoffice } = await import('./store.js');
      const input: NetworkInput = {
        basis: opts.zones ? 'zone' : 'station',
        currency: opts.currency,
        fares: readCsvTable(opts.fares, ['from', 'to', 'fare']).map((r) => ({ from: r.from, to: r.to, fare: whole(opts.fares, r.fare, 'fare') })),
        stations: opts.zones ? readCsvTable(opts.zones, ['station', 'zone']).map((r) => ({ station: r.station, zone: r.zone })) : undefined,
        links: opts.links ? readCsvTable(opts.links, ['from', 'to', 'seconds']).map((r) => ({ from: r.from, to: r.to, seconds: whole(opts.links!, r.seconds, 'seconds') })) : undefined,
        maxFare: opts.maxFare,
        source: opts.fares,
      };
      const w = await workDir(cmd);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const r = await loadNetwork(store, w.config.operator, input);
        if (opts.incompleteAfter !== undefined) await setTripSetting(store, 'incompleteAfter', opts.incompleteAfter);
        if (opts.travelSlack !== undefined) await setTripSetting(store, 'travelSlack', opts.travelSlack);
        emit(cmd, { ok: true, ...r, basis: input.basis, currency: input.currency }, `fare table #${r.tableId} (${input.basis}s, ${input.currency}): ${r.fares} fares, maximum ${r.maxFare}; ${r.stations} station(s) with zones; ${r.travelPairs} travel times`);
      });
    });

  program
    .command('match')
    .description('work out the trips and anomalies of every ticket with new taps now (eticket serve does it continually)')
    .addHelpText('after', '\nExample:\n  $ eticket match --json')
    .action(async (_o: unknown, cmd: Command) => {
      const { denylistVersion } = await import('../../backoffice/denylist.js');
      const { withBackoffice } = await import('./store.js');
      const w = await workDir(cmd);
      await withBackoffice(cmd, w, undefined, async ({ bo }) => {
        const m = bo.matcher();
        const total = { tickets: 0, taps: 0, inserted: 0, updated: 0, deleted: 0, anomalies: [] as unknown[], denylisted: [] as string[] };
        for (;;) {
          const r = await m.matchPending();
          if (!r) throw new UsageError('another process is matching right now: try again in a moment');
          if (!r.tickets) break;
          total.tickets += r.tickets;
          total.taps += r.taps;
          total.inserted += r.trips.inserted;
          total.updated += r.trips.updated;
          total.deleted += r.trips.deleted;
          total.anomalies.push(...r.anomalies);
          total.denylisted.push(...r.denylisted);
        }
        const swept = await m.sweep();
        emit(cmd, { ok: true, ...total, incomplete: swept, denylistVersion: await denylistVersion(bo.store.db, w.config.operator) }, [
          `${total.tickets} ticket(s), ${total.taps} tap(s): ${total.inserted} trip(s) new, ${total.updated} changed, ${total.deleted} gone; ${swept} open trip(s) now incomplete`,
          ...(total.anomalies as { kind: string; detail: string }[]).map((a) => `anomaly ${a.kind}: ${a.detail}`),
          ...(total.denylisted.length ? [`denylisted: ${total.denylisted.join(' ')}`] : []),
        ]);
      });
    });

  const deny = program.command('denylist').description('cards gates refuse offline, in versions').addHelpText('after', '\nExample:\n  $ eticket denylist show\n  $ eticket denylist remove 719826ADF3F79F1D --note "card replaced"');
  deny
    .command('show')
    .description('the cards on the denylist now, with why')
    .addHelpText('after', '\nExample:\n  $ eticket --json denylist show')
    .action(async (_o: unknown, cmd: Command) => {
      const { denylistEntries, denylistVersion } = await import('../../backoffice/denylist.js');
      const { withBackoffice } = await import('./store.js');
      const w = await workDir(cmd);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const list = await denylistEntries(store.db, w.config.operator);
        const version = await denylistVersion(store.db, w.config.operator);
        emit(cmd, { version, cards: list }, [`denylist version ${version}: ${list.length} card(s)`, ...list.map((e) => `${e.card} (since v${e.addedVersion}) ${e.reason}`)]);
      });
    });
  for (const [name, desc] of [
    ['add', 'put cards on the denylist (one new version)'],
    ['remove', 'take cards off the denylist (one new version)'],
  ] as const) {
    deny
      .command(`${name} <serial...>`)
      .description(desc)
      .option('--note <text>', 'why (kept with the version)', name === 'add' ? 'added by the operator' : 'removed by the operator')
      .addHelpText('after', `\nExample:\n  $ eticket denylist ${name} 719826ADF3F79F1D --note "lost card"`)
      .action(async (serials: string[], opts: { note: string }, cmd: Command) => {
        const { denylistAdd, denylistRemove } = await import('../../backoffice/denylist.js');
        const { withBackoffice } = await import('./store.js');
        const cards = serials.map((s) => s.toUpperCase());
        for (const c of cards) if (!/^[0-9A-F]{16}$/.test(c)) throw new UsageError(`not a card serial (16 hex digits): ${c}`);
        const w = await workDir(cmd);
        await withBackoffice(cmd, w, undefined, async ({ store }) => {
          const r = await store.transaction(async (tx): Promise<{ version?: number; changed: string[] }> => {
            if (name === 'add') {
              const a = await denylistAdd(tx, w.config.operator, cards.map((card) => ({ card, reason: opts.note })), opts.note);
              return { version: a.version, changed: a.added };
            }
            const d = await denylistRemove(tx, w.config.operator, cards, opts.note);
            return { version: d.version, changed: d.removed };
          });
          const changed = r.changed;
          emit(cmd, { ok: true, version: r.version, changed }, r.version ? `denylist version ${r.version}: ${changed.length} card(s) ${name === 'add' ? 'added' : 'removed'}` : `nothing to do: ${name === 'add' ? 'already listed' : 'not listed'}`);
        });
      });
  }

  const report = program.commands.find((c) => c.name() === 'report') ?? program.command('report').description('reports from the store');
  const range = (c: Command) =>
    c
      .option('--from <date>', 'from this day (YYYY-MM-DD, UTC, inclusive)', dayArg('--from'))
      .option('--until <date>', 'until this day (YYYY-MM-DD, exclusive)', dayArg('--until'))
      .option('--seller <id>', 'one seller ("(operator)" for the operator\'s own)')
      .option('--format <format>', 'table, csv or json (default table; json with --json)');
  range(report.command('trips').description('trips matched from the gates\' journals: totals per day and seller, or every trip with --list'))
    .option('--list', 'every trip, not only the totals')
    .addHelpText('after', '\nA trip is complete (entry and exit), open (still travelling), incomplete (no exit within the configured time:\nmaximum fare) or exit_only (an exit without an entry: maximum fare). Fares apply to per-trip tickets (metro passes).\n\nExample:\n  $ eticket report trips --from 2030-01-15 --until 2030-01-16\n  $ eticket report trips --list --format csv > trips.csv')
    .action(async (opts: { from?: string; until?: string; seller?: string; format?: string; list?: boolean }, cmd: Command) => {
      const { tripReport } = await import('../../backoffice/clearing.js');
      const { withBackoffice } = await import('./store.js');
      const format = reportFormat(cmd, opts.format);
      const w = await workDir(cmd);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const r = await tripReport(store, opts, { listTrips: opts.list });
        if (format === 'json') return void console.log(JSON.stringify(opts.list ? r : { totals: r.totals }));
        if (opts.list)
          printTable<TripReportRow>(format, r.trips, [['day', (t) => t.day], ['seller', (t) => t.seller], ['tid', (t) => t.tid], ['card', (t) => t.card], ['status', (t) => t.status], ['entry_station', (t) => t.entryStation], ['entry_time', (t) => t.entryTime], ['exit_station', (t) => t.exitStation], ['exit_time', (t) => t.exitTime], ['fare', (t) => t.fare], ['currency', (t) => t.currency]], 'no trips');
        else printTable<TripTotals>(format, r.totals, [['day', (t) => t.day], ['seller', (t) => t.seller], ['currency', (t) => t.currency], ['trips', (t) => t.trips], ['complete', (t) => t.complete], ['incomplete', (t) => t.incomplete], ['exit_only', (t) => t.exitOnly], ['open', (t) => t.open], ['revenue', (t) => t.revenue]], 'no trips');
      });
    });
  range(report.command('clearing').description('clearing and reconciliation per seller and day: sold, refunded, used, trips and trip revenue; mismatches listed'))
    .addHelpText('after', '\nMismatches: unsold_ticket (a gate passed a ticket nobody sold), never_seen (sold, never at a gate), unverified\n(records kept apart: gate authentication or card receipt failed), wrong_card (a ticket used on another card).\nCSV prints the rows, then a blank line and the mismatches.\n\nExample:\n  $ eticket report clearing --from 2030-01-15 --until 2030-01-16 --format csv > clearing.csv')
    .action(async (opts: { from?: string; until?: string; seller?: string; format?: string }, cmd: Command) => {
      const { clearingReport } = await import('../../backoffice/clearing.js');
      const { withBackoffice } = await import('./store.js');
      const format = reportFormat(cmd, opts.format);
      const w = await workDir(cmd);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const r = await clearingReport(store, w.config.operator, opts);
        if (format === 'json') return void console.log(JSON.stringify(r));
        printTable<ClearingRow>(format, r.rows, [['seller', (x) => x.seller], ['day', (x) => x.day], ['currency', (x) => x.currency], ['sold', (x) => x.sold], ['sales_gross', (x) => x.salesGross], ['refunded', (x) => x.refunded], ['refunds', (x) => x.refunds], ['used', (x) => x.used], ['trips', (x) => x.trips], ['incomplete', (x) => x.incompleteTrips], ['trip_revenue', (x) => x.tripRevenue], ['net', (x) => x.net]], 'nothing sold or travelled');
        console.log('');
        if (format === 'table') console.log(`mismatches: ${Object.entries(r.mismatchCounts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
        printTable(format, r.mismatches, [['kind', (m) => m.kind], ['tid', (m) => m.tid], ['card', (m) => m.card], ['gate', (m) => m.gate], ['seq', (m) => m.seq], ['seller', (m) => m.seller], ['day', (m) => m.day], ['detail', (m) => m.detail]], 'no mismatches');
      });
    });
  report
    .command('anomalies')
    .description('clones and rollbacks found in the journals, and whether the card is on the denylist')
    .option('--format <format>', 'table, csv or json')
    .addHelpText('after', '\nExample:\n  $ eticket report anomalies --format csv')
    .action(async (opts: { format?: string }, cmd: Command) => {
      const { anomalyReport } = await import('../../backoffice/clearing.js');
      const { withBackoffice } = await import('./store.js');
      const format = reportFormat(cmd, opts.format);
      const w = await workDir(cmd);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const rows = await anomalyReport(store, w.config.operator);
        if (format === 'json') return void console.log(JSON.stringify({ anomalies: rows }));
        printTable(format, rows, [['id', (a) => a.anomalyId], ['kind', (a) => a.kind], ['card', (a) => a.card], ['tid', (a) => a.tid], ['gate', (a) => a.gate], ['denylisted', (a) => (a.denylisted ? 'yes' : 'no')], ['detected', (a) => a.detectedAt], ['detail', (a) => a.detail]], 'no anomalies');
      });
    });
}
