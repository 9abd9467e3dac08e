// `eticket service add | list`, `eticket book`, `eticket cancel` and `eticket report sales`: inventory (services
// with seats per class, taken atomically), booking onto a card, cancelling with a refund bill, sales per
// seller and day (table, CSV or JSON).

import { Command, InvalidArgumentError } from 'commander';
import { hex } from '../../sdk/bytes.js';
import { formatServiceDate, parseServiceDate } from '../../sdk/fields.js';
import type { ServiceClassSpec, ServiceRecord } from '../../backoffice/store/store.js';
import type { ReceiptEvidence } from '../../backoffice/arbitration.js';
import { parseDeparture } from './batch.js';
import { intArg } from './cmd-card.js';
import { addModeOption, addTerminalOptions, checkingTerminal, terminalConfig, type TerminalOptions } from './cmd-tickets.js';
import { addHolderFlags, holderFromFlags } from './cmd-issue.js';
import { kindArg } from './cmd-clients.js';
import { addCardOptions, emit, globals, passphrase, UsageError, withCard, workDir, type CardOptions } from './context.js';

/** The store and its back office: loaded by the action that opens them, never by --help (host/cli/main.ts). */
const backoffice = () => import('./store.js');

function classArg(v: string, prev: ServiceClassSpec[] = []): ServiceClassSpec[] {
  const m = /^([^:]{1,8}):(\d{1,6}):(\d{1,12})(?::([A-Z]{3}))?$/.exec(v);
  if (!m || Number(m[2]) < 1) throw new InvalidArgumentError('a class is NAME:SEATS:PRICE[:CURRENCY], e.g. 2:100:55300:CNY (price in minor units)');
  return [...prev, { class: m[1], seats: Number(m[2]), price: Number(m[3]), currency: m[4] ?? 'CNY' }];
}

function dateArg(v: string): number {
  try {
    return parseServiceDate(v);
  } catch {
    throw new InvalidArgumentError('date is YYYY-MM-DD');
  }
}

function serviceLine(s: ServiceRecord): string {
  const route = [s.origin, s.destination].filter(Boolean).join('→');
  return `#${s.serviceId} ${s.code} ${formatServiceDate(s.serviceDate)} ${route} ${s.classes.map((c) => `class ${c.class}: ${c.seatsLeft}/${c.capacity} left at ${c.price} ${c.currency}`).join('; ')}`.replace(/ +/g, ' ');
}

export function registerSales(program: Command): void {
  const service = program.command('service').description('inventory: services (train, route or event on a date) with seats per class').addHelpText('after', '\nExample:\n  $ eticket service add --train G1 --date 2030-01-15 --origin BJS --destination SHH --class 2:100:55300 --class 1:20:93300');
  service
    .command('add')
    .description('add a service and its seats (numbered per coach)')
    .requiredOption('--train <code>', 'train, route or event code')
    .requiredOption('--date <date>', 'service date YYYY-MM-DD', dateArg)
    .requiredOption('--class <spec>', 'NAME:SEATS:PRICE[:CURRENCY] (repeatable); price in minor units', classArg)
    .option('--origin <station>', 'origin station or venue')
    .option('--destination <station>', 'destination station')
    .option('--departure <time>', 'HH:MM')
    .option('--coach-size <n>', 'seats per coach', intArg('coach-size'), 100)
    .option('--kind <kind>', 'ticket kind written into its tickets: rail, metro, bus, event or 0..255 (real-name read limits are per kind)', kindArg)
    .addHelpText('after', '\nExample:\n  $ eticket service add --train G1 --date 2030-01-15 --origin BJS --destination SHH --departure 09:00 --class 2:100:55300 --json')
    .action(async (opts: { train: string; date: number; class: ServiceClassSpec[]; origin?: string; destination?: string; departure?: string; coachSize: number; kind?: number }, cmd: Command) => {
      if (opts.coachSize < 1 || opts.coachSize > 999) throw new UsageError('--coach-size is 1..999');
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const s = await store.addService(
          { operator: w.config.operator, code: opts.train, serviceDate: opts.date, origin: opts.origin, destination: opts.destination, departure: opts.departure !== undefined ? parseDeparture(opts.departure) : undefined, kind: opts.kind },
          opts.class.map((c) => ({ ...c, coachSize: opts.coachSize })),
        );
        emit(cmd, { ok: true, service: s }, `service ${serviceLine(s)}`);
      });
    });
  service
    .command('list')
    .description('services and the seats left in each class')
    .option('--date <date>', 'only this date', dateArg)
    .option('--train <code>', 'only this code')
    .addHelpText('after', '\nExample:\n  $ eticket service list --date 2030-01-15')
    .action(async (opts: { date?: number; train?: string }, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const list = await store.services(w.config.operator, { date: opts.date, code: opts.train });
        emit(cmd, { services: list }, list.length ? list.map(serviceLine) : 'no services');
      });
    });

  const book = program
    .command('book')
    .description('book a seat on a service and load the ticket onto the card: seat, TID, TF_V, sealing and bill in one transaction, then LOAD')
    .requiredOption('--service <id>', 'service id (`eticket service list`)', intArg('service'))
    .requiredOption('--class <class>', 'class to book')
    .option('--passenger <name>', 'passenger name (printed on the card; for a real-name ticket use --holder-*)')
    .option('--seller <id>', 'the registered seller selling it (default: the operator)');
  addHolderFlags(addCardOptions(book));
  book.addHelpText(
    'after',
    '\nA sold-out class is refused (exit 1) and nothing is issued. A real-name ticket (--holder-*) carries no name\non the card: the back office keeps the holder encrypted until the ticket expires (docs/realname.md).\n\nExample:\n  $ eticket book --service 1 --class 2 --card card.img --passenger "Li Wei"\n  $ eticket book --service 1 --class 2 --card card.img --holder-name "Li Wei" --holder-document-type id-card --holder-document-number 11010519491231002X',
  );
  book.action(async (opts: CardOptions & { service: number; class: string; passenger?: string; seller?: string; holderName?: string; holderDocumentType?: string; holderDocumentNumber?: string; holderPhoto?: string }, cmd: Command) => {
    const holder = holderFromFlags(opts);
    if (holder && opts.passenger) throw new UsageError('a real-name ticket (--holder-*) carries no --passenger');
    const w = await workDir(cmd);
    const pass = await passphrase();
    w.loadAuthoritySigner(pass);
    const [{ withBackoffice }, { billOf }, { IssuingTerminal, isDuplicate }] = await Promise.all([backoffice(), import('../../backoffice/service.js'), import('../issuing.js')]);
    await withCard(cmd, opts, async ({ session }) => {
      const issuing = new IssuingTerminal(session, { authorize: w.issuerAuthorizer(() => pass) });
      const info = await issuing.select();
      if (info.lifecycle !== 'OPERATIONAL') throw new UsageError('the card is blank: personalise it first');
      const creds = await issuing.credentials();
      await withBackoffice(cmd, w, pass, async ({ store, bo }) => {
        const svc = await store.service(opts.service);
        if (!svc) throw new UsageError(`no service ${opts.service} (\`eticket service list\`)`);
        if (opts.seller && (await store.client(opts.seller))?.role !== 'seller') throw new UsageError(`no seller ${opts.seller} is registered`);
        const out = await bo.issue({ request: { serviceDate: svc.serviceDate, ...(opts.passenger ? { passenger: opts.passenger } : {}) }, card: creds, sellerId: opts.seller, booking: { serviceId: svc.serviceId, class: opts.class }, holder });
        let seq: number | undefined;
        try {
          seq = (await issuing.load(out.ticket.sealed)).sequenceNumber;
        } catch (e) {
          if (!isDuplicate(e)) {
            // The card refused it for good (full): the seat goes back, the TID is released.
            await bo.releaseUnloaded(out.ticket.tid);
            throw e;
          }
        }
        await bo.markLoaded(out.ticket.tid, seq);
        const bill = out.bill && billOf(out.bill);
        emit(cmd, { ok: true, tid: out.ticket.tid, card: hex(creds.serial), serviceId: svc.serviceId, class: out.seat?.class, coach: out.seat?.coach, seat: out.seat?.seat, price: bill?.price, currency: bill?.currency, sequenceNumber: seq, realName: holder ? true : undefined, bill }, `booked ${out.ticket.tid}${holder ? ' (real-name)' : ''}: ${svc.code} ${formatServiceDate(svc.serviceDate)} class ${out.seat?.class} coach ${out.seat?.coach} seat ${out.seat?.seat}, ${bill?.price} ${bill?.currency}; loaded (slot ${seq}); bill ${bill?.billId} signed by key ${bill?.keyId}`);
      });
    });
  });

  const cancel = program
    .command('cancel')
    .description('cancel a ticket: frees its seat and bills the refund; a ticket on a card is deleted from it first (give the card)')
    .requiredOption('--tid <tid>', 'ticket to cancel');
  addModeOption(addTerminalOptions(addCardOptions(cancel)));
  cancel.addHelpText('after', '\nExample:\n  $ eticket cancel --tid CR-20300115-000001                 # sealed, never loaded\n  $ eticket cancel --tid CR-20300115-000001 --card card.img # loaded: DELETE on the card, then the refund');
  cancel.action(async (opts: CardOptions & TerminalOptions & { tid: string }, cmd: Command) => {
    const w = await workDir(cmd);
    const pass = await passphrase();
    // With a card: its keys are opened now, so a wrong passphrase stops the command before the store or the card.
    const config = opts.card || opts.reader ? terminalConfig(w, pass, opts) : undefined;
    const [{ withBackoffice }, { billOf }] = await Promise.all([backoffice(), import('../../backoffice/service.js')]);
    await withBackoffice(cmd, w, pass, async ({ bo }) => {
      const finish = async (deletion?: ReceiptEvidence) => {
        const r = await bo.cancel(opts.tid, { deletion, source: `cli:${opts.gateId}` });
        const refund = r.refund && billOf(r.refund);
        emit(cmd, { ok: true, tid: opts.tid, status: r.ticket.status, alreadyClosed: r.alreadyClosed, refund }, `${opts.tid} ${r.ticket.status}${r.alreadyClosed ? ' (already)' : ''}; refund ${refund ? `${refund.price} ${refund.currency}, bill ${refund.billId}` : 'none'}`);
      };
      if (!opts.card && !opts.reader) return finish();
      // The store is open before the card is touched: a busy store stops the command with the card unchanged.
      await withCard(cmd, opts, async ({ session }) => {
        const t = await checkingTerminal(session, config!);
        const v = await t.verifyTicket({ tid: opts.tid }, { verificationCode: false });
        const r = await t.deleteTicket(v);
        await finish({ encoded: r.encoded, transaction: r.sym });
      });
    });
  });

  const report = program.command('report').description('reports from the store').addHelpText('after', '\nExample:\n  $ eticket report sales --seller acme --format csv');
  report
    .command('sales')
    .description('sales per seller and day (UTC): tickets sold and refunded, gross, refunds and net revenue in minor units')
    .option('--seller <id>', 'one seller ("(operator)" for the operator\'s own sales)')
    .option('--from <date>', 'from this day (YYYY-MM-DD, inclusive)')
    .option('--until <date>', 'until this day (YYYY-MM-DD, exclusive)')
    .option('--format <format>', 'table, csv or json (default table; json with --json)')
    .addHelpText('after', '\nExample:\n  $ eticket report sales\n  $ eticket report sales --seller acme --format csv > acme.csv\n  $ eticket --json report sales')
    .action(async (opts: { seller?: string; from?: string; until?: string; format?: string }, cmd: Command) => {
      const format = opts.format ?? (globals(cmd).json ? 'json' : 'table');
      if (!['table', 'csv', 'json'].includes(format)) throw new UsageError('--format is table, csv or json');
      const day = (v: string | undefined, name: string) => {
        if (v === undefined) return undefined;
        if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || !Number.isFinite(Date.parse(`${v}T00:00:00Z`))) throw new UsageError(`--${name} is YYYY-MM-DD`);
        return new Date(`${v}T00:00:00Z`);
      };
      const from = day(opts.from, 'from');
      const until = day(opts.until, 'until');
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const rows = await store.salesReport({ seller: opts.seller, from, until });
        if (format === 'json') console.log(JSON.stringify({ rows }));
        else if (format === 'csv') {
          console.log('seller,day,currency,sold,refunded,gross,refunds,net');
          for (const r of rows) console.log([csvCell(r.seller), r.day, r.currency, r.sold, r.refunded, r.gross, r.refunds, r.net].join(','));
        } else if (!rows.length) console.log('no sales');
        else {
          console.log(`${'seller'.padEnd(16)} ${'day'.padEnd(10)} cur  ${'sold'.padStart(6)} ${'refund'.padStart(6)} ${'gross'.padStart(12)} ${'refunds'.padStart(12)} ${'net'.padStart(12)}`);
          for (const r of rows) console.log(`${r.seller.padEnd(16)} ${r.day} ${r.currency}  ${String(r.sold).padStart(6)} ${String(r.refunded).padStart(6)} ${String(r.gross).padStart(12)} ${String(r.refunds).padStart(12)} ${String(r.net).padStart(12)}`);
        }
      });
    });
}

function csvCell(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}
