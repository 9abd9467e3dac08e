// The checking terminal's commands: `eticket tickets` (READ), `verify`, `use` (WRITE USAGE), `delete`,
// `rebook` (delete on the card + re-issue), all with the working directory's gate keys 4/5 and key 6.

import { Command, InvalidArgumentError } from 'commander';
import { hex } from '../../sdk/bytes.js';
import { parseServiceDate } from '../../sdk/fields.js';
import type { TicketRequest } from '../../sdk/roles/ticket-server.js';
import type { TicketFace } from '../../sdk/ticket.js';
import type { CheckingTerminal, CheckingTerminalConfig, GateMode, Receipt, TicketQuery } from '../checking.js';
import type { CardSession } from '../session.js';
import { parseTime, toRequest } from './batch.js';
import { addTicketFlags, ticketFlagValues } from './cmd-issue.js';
import { addCardOptions, emit, passphrase, UsageError, withCard, workDir, type CardOptions } from './context.js';
import type { WorkDir } from './workdir.js';

/** What the ticket commands print: loaded with the first command that prints a ticket or a receipt. */
const format = () => import('./format.js');

export interface TerminalOptions {
  station: string;
  gateId: string;
  time?: string;
  /** Commands with --mode only. */
  mode?: GateMode;
}

function modeArg(v: string): GateMode {
  if (v !== 'pki' && v !== 'sym') throw new InvalidArgumentError('mode is pki or sym');
  return v;
}

export function addModeOption(cmd: Command): Command {
  return cmd.option('--mode <mode>', 'gate mode: pki (keys 4/5, card-signed receipts) or sym (diversified AES keys, MAC receipts the operator checks)', modeArg, 'pki');
}

export function addTerminalOptions(cmd: Command, station = 'OFFICE'): Command {
  return cmd
    .option('--station <code>', 'station this terminal stands at (written into usage records)', station)
    .option('--gate-id <id>', 'terminal id (written into usage records)', 'CLI')
    .option('--time <time>', 'clock of the terminal: ISO 8601 or epoch seconds (default: now)');
}

export function clockOf(time: string | undefined): () => number {
  if (time === undefined) return () => Math.floor(Date.now() / 1000);
  let t: number;
  try {
    t = parseTime('--time', time);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return () => t;
}

/** The terminal config for a mode: pki loads keys 4/5 and card trust; sym only the master key (no pki keys). */
export function terminalConfig(w: WorkDir, pass: string, opts: TerminalOptions): CheckingTerminalConfig {
  const common = { authorities: [w.authorityPublicKey], gateId: opts.gateId, station: opts.station, clock: clockOf(opts.time) };
  if (opts.mode === 'sym') return { ...common, mode: 'sym', masterKeys: [w.loadMasterKey(pass)], suite: w.config.suite };
  return { ...common, mode: 'pki', keys: w.loadTerminalKeys(pass), cardTrust: w.cardTrust() };
}

export async function checkingTerminal(w: WorkDir, session: CardSession, opts: TerminalOptions): Promise<CheckingTerminal> {
  const { CheckingTerminal } = await import('../checking.js');
  const t = new CheckingTerminal(session, terminalConfig(w, await passphrase(), opts));
  await t.select();
  return t;
}

/** How a receipt was checked, for people: a MAC convinces only the operator that holds the master key. */
function receiptCheck(r: Receipt): string {
  return r.sym ? 'card receipt MAC verified (sym: only the operator\'s back office can re-check it, with the transaction in --json)' : 'card-signed receipt verified';
}

function dateArg(v: string): number {
  try {
    return parseServiceDate(v);
  } catch {
    throw new InvalidArgumentError('date is YYYY-MM-DD');
  }
}

type QueryOptions = { tid?: string; date?: number; train?: string };

function queryOf(opts: QueryOptions): TicketQuery {
  if (opts.tid) return { tid: opts.tid };
  if (opts.date !== undefined) return { date: opts.date, train: opts.train };
  throw new UsageError('which ticket? give --tid <tid>, or --date <YYYY-MM-DD> (and --train)');
}

function addQueryOptions(cmd: Command): Command {
  return cmd.option('--tid <tid>', 'ticket id').option('--date <date>', 'service date YYYY-MM-DD (with --train): the first ticket for it', dateArg).option('--train <code>', 'train, route or event code');
}

const EVENTS = { entry: 'ENTRY', 'temporary-exit': 'TEMPORARY_EXIT', exit: 'EXIT', punch: 'PUNCH', 'paper-printed': 'PAPER_PRINTED' } as const;

export function registerTickets(program: Command): void {
  addTerminalOptions(
    addCardOptions(
      program
        .command('tickets')
        .description('read the tickets on a card (READ: for a date or later, and a train)')
        .option('--date <date>', 'tickets for this date or later (YYYY-MM-DD)', dateArg)
        .option('--train <code>', 'only this train / route / event')
        .addHelpText('after', '\nExample:\n  $ eticket tickets --card card.img\n  $ eticket tickets --card card.img --date 2026-11-22 --json'),
    ),
  ).action(async (opts: CardOptions & TerminalOptions & { date?: number; train?: string }, cmd: Command) => {
    const w = await workDir(cmd);
    await withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(w, session, opts);
      const list = await t.readTickets({ date: opts.date, train: opts.train });
      const { ticketJson, ticketLine } = await format();
      emit(cmd, { tickets: list.map(ticketJson) }, list.length ? list.map(ticketLine) : 'no tickets on the card for this query');
    });
  });

  addModeOption(
    addTerminalOptions(
      addQueryOptions(
        addCardOptions(
          program
            .command('verify')
            .description("verify one ticket: the card's sealed view, and TF_V against the authority key (key 6)")
            .addHelpText('after', '\nExit status 2 with RECORD_NOT_FOUND: no such ticket on this card; 5: a signature or MAC does not verify.\n\nExample:\n  $ eticket verify --card card.img --tid CR-20261122-000001\n  $ eticket verify --card card.img --date 2026-11-22 --train G1 --json\n  $ eticket verify --card card.img --tid CR-20261122-000001 --mode sym'),
        ),
      ),
    ),
  ).action(async (opts: CardOptions & TerminalOptions & QueryOptions, cmd: Command) => {
    const w = await workDir(cmd);
    const q = queryOf(opts);
    await withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(w, session, opts);
      const v = await t.verifyTicket(q);
      const { ticketJson, ticketLine } = await format();
      emit(cmd, { ok: true, mode: t.mode, ticket: ticketJson(v) }, [
        `valid: ${ticketLine(v)}`,
        `  TF_V verified with authority key ${hex(v.verificationCode!.authorityKeyId)}`,
        t.mode === 'sym' ? '  gate mode sym: the card proved its diversified key (session MAC)' : '  gate mode pki: view opened with key 5',
      ]);
    });
  });

  addModeOption(
    addTerminalOptions(
      addQueryOptions(
        addCardOptions(
          program
            .command('use')
            .description('record a usage event on a ticket (WRITE USAGE): entry, temporary-exit, exit, punch, paper-printed')
            .requiredOption('--event <event>', `one of ${Object.keys(EVENTS).join(', ')}`)
            .addHelpText('after', '\nThe card enforces the usage state machine (exit 2 when it refuses); the card\'s receipt is checked\n(signed in pki mode, MAC\'d in sym mode).\n\nExample:\n  $ eticket use --card card.img --tid CR-20261122-000001 --event punch --station BJS\n  $ eticket use --card card.img --tid CR-20261122-000001 --event entry --mode sym --json'),
        ),
      ),
    ),
  ).action(async (opts: CardOptions & TerminalOptions & QueryOptions & { event: string }, cmd: Command) => {
    const event = EVENTS[opts.event as keyof typeof EVENTS];
    if (!event) throw new UsageError(`--event is one of ${Object.keys(EVENTS).join(', ')}`);
    const w = await workDir(cmd);
    const q = queryOf(opts);
    await withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(w, session, opts);
      const v = await t.verifyTicket(q, { verificationCode: false });
      const r = await t.recordUsage(v, event);
      const { receiptJson, usageState } = await format();
      emit(cmd, { ok: true, mode: t.mode, ...receiptJson(r) }, `${opts.event} recorded on ${r.tid} at ${opts.station}: now ${usageState(v.usage.state)}, counter ${r.counter}; ${receiptCheck(r)}`);
    });
  });

  addModeOption(
    addTerminalOptions(
      addQueryOptions(
        addCardOptions(
          program
            .command('delete')
            .description('delete (void) a ticket on the card; prints the card\'s deletion receipt (signed, or MAC\'d in sym mode)')
            .addHelpText('after', '\nExample:\n  $ eticket delete --card card.img --tid CR-20261122-000001 --json\n  $ eticket delete --card card.img --tid CR-20261122-000001 --mode sym --json'),
        ),
      ),
    ),
  ).action(async (opts: CardOptions & TerminalOptions & QueryOptions, cmd: Command) => {
    const w = await workDir(cmd);
    const q = queryOf(opts);
    await withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(w, session, opts);
      const v = await t.verifyTicket(q, { verificationCode: false });
      const r = await t.deleteTicket(v);
      const { receiptJson } = await format();
      emit(cmd, { ok: true, mode: t.mode, ...receiptJson(r) }, `${r.tid} deleted from card ${hex(r.cardSerial)}; ${receiptCheck(r)}; keep the receipt (${r.encoded.length} bytes in --json)`);
    });
  });

  const rebook = program
    .command('rebook')
    .description('rebook (改簽) a ticket: delete it on the card, then issue its replacement with the changed fields')
    .requiredOption('--tid <tid>', 'ticket to rebook');
  addCardOptions(rebook);
  addTicketFlags(rebook, ['--tid']);
  rebook.option('--new-tid <tid>', 'TID of the replacement (default: a new one from the ledger)');
  addTerminalOptions(rebook);
  rebook.addHelpText('after', '\nUnchanged fields are copied from the old ticket; validity is recomputed for a new service date.\n\nExample:\n  $ eticket rebook --card card.img --tid CR-20261122-000001 --service-date 2026-11-23 --train G7 --seat 03F');
  rebook.action(async (opts: CardOptions & TerminalOptions & Record<string, unknown> & { tid: string; newTid?: string }, cmd: Command) => {
    const w = await workDir(cmd);
    const changes = ticketFlagValues(opts);
    delete changes.tid;
    if (Object.keys(changes).length === 0) throw new UsageError('nothing to change: give the new fields, e.g. --service-date, --train, --seat');
    const [{ IssuingTerminal, isDuplicate }, { TicketServer }, { faceJson, receiptJson }] = await Promise.all([import('../issuing.js'), import('../../sdk/roles/ticket-server.js'), format()]);
    await withCard(cmd, opts, async ({ session }) => {
      const authority = w.loadAuthority(await passphrase());
      const t = await checkingTerminal(w, session, opts);
      const old = await t.verifyTicket({ tid: opts.tid });
      const request = replacement(old.face, changes, opts.newTid);
      const receipt = await t.deleteTicket(old);
      const issuing = new IssuingTerminal(session);
      const creds = await issuing.credentials();
      const ledger = w.ledger();
      const serial = hex(creds.serial);
      const conflict = request.tid ? ledger.conflict(request.tid, serial) : undefined;
      if (conflict) throw new UsageError(`${conflict}; the old ticket is deleted (receipt in --json): issue the replacement with \`eticket issue\``);
      const face = new TicketServer(w.config.operator, ledger.view(serial, request.tid)).createTicket(request);
      let seq: number | undefined;
      try {
        seq = (await issuing.load(authority.issue(face, creds).sealed)).sequenceNumber;
      } catch (e) {
        if (!isDuplicate(e)) throw e;
      }
      emit(cmd, { ok: true, deleted: receiptJson(receipt), issued: { sequenceNumber: seq, face: faceJson(face) } }, [`${opts.tid} deleted (receipt verified)`, `${face.tid} issued in its place${seq ? ` (slot ${seq})` : ''}`]);
    });
  });
}

/** The new request: the old face's own fields, overridden; server-filled fields recomputed. */
function replacement(old: TicketFace, changes: Record<string, unknown>, newTid?: string): TicketRequest {
  const { version: _v, operator: _o, tid: _t, issuedAt: _i, validFrom, validUntil, ...kept } = old;
  const base: Record<string, unknown> = { ...kept };
  // Validity follows a changed service date unless given explicitly.
  if (changes.serviceDate === undefined) Object.assign(base, { validFrom, validUntil });
  return toRequest({ ...base, ...changes, ...(newTid ? { tid: newTid } : {}) });
}
