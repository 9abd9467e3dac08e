// The checking terminal's commands: `eticket tickets` (READ), `verify`, `use` (WRITE USAGE), `delete`,
// `rebook` (delete on the card + re-issue), all with the working directory's gate keys 4/5 and key 6.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { Evidence } from '../../backoffice/arbitration.js';
import { CryptoError, TicketNotFoundError } from '../../sdk/errors.js';
import { hex } from '../../sdk/bytes.js';
import { parseServiceDate } from '../../sdk/fields.js';
import type { TicketRequest } from '../../sdk/roles/ticket-server.js';
import type { TicketFace } from '../../sdk/ticket.js';
import type { CheckingTerminal, CheckingTerminalConfig, GateMode, Receipt, TicketQuery, TicketView } from '../checking.js';
import type { CardSession } from '../session.js';
import { parseTime, toRequest } from './batch.js';
import { addTicketFlags, ticketFlagValues } from './cmd-issue.js';
import { addCardOptions, emit, EXIT, ExitStatus, passphrase, UsageError, withCard, workDir, type CardOptions } from './context.js';
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

/**
 * A checking terminal over the session, SELECTed. Commands build `config` (terminalConfig) before they open the
 * card or the store: a wrong passphrase stops the command before anything is locked or touched.
 */
export async function checkingTerminal(session: CardSession, config: CheckingTerminalConfig): Promise<CheckingTerminal> {
  const { CheckingTerminal } = await import('../checking.js');
  const t = new CheckingTerminal(session, config);
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
    const config = terminalConfig(w, await passphrase(), opts);
    await withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(session, config);
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
            .command('verify [file]')
            .description("verify one ticket on a card (its sealed view, and TF_V with key 6); or, given a FILE (- for stdin), arbitrate a ticket, bill or card receipt against the key history")
            .addHelpText(
              'after',
              '\nOn a card: exit status 2 when the card\'s view says no such ticket (or a deleted one); 5: a signature or MAC does not verify.\nA FILE holds a bill (eticket-bill/1 JSON), a receipt as `use` / `delete --json` print it ({receipt, transaction?}),\na ticket ({face, verificationCode} hex) or bare hex (B4, or A1 ‖ A2). The answer names the key that signed it\nand whether that key was valid at the time; exit 5 when it does not verify, with the reason. Sym receipts\nneed the passphrase (the checking master key).\n\nExample:\n  $ eticket verify --card card.img --tid CR-20261122-000001\n  $ eticket verify --card card.img --date 2026-11-22 --train G1 --json\n  $ eticket verify --card card.img --tid CR-20261122-000001 --mode sym\n  $ eticket verify bill.json\n  $ eticket --json delete --card card.img --tid CR-20261122-000001 | eticket verify -',
            ),
        ),
      ),
    ),
  ).action(async (file: string | undefined, opts: CardOptions & TerminalOptions & QueryOptions, cmd: Command) => {
    const w = await workDir(cmd);
    if (file !== undefined) {
      if (opts.card || opts.reader || opts.tid || opts.date !== undefined) throw new UsageError('give a FILE to arbitrate, or a card (--card / --reader) with --tid or --date, not both');
      await arbitrateFile(cmd, w, file);
      return;
    }
    const q = queryOf(opts);
    const config = terminalConfig(w, await passphrase(), opts);
    await withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(session, config);
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
    const pass = await passphrase();
    const config = terminalConfig(w, pass, opts);
    const { withBackoffice } = await import('./store.js');
    await withBackoffice(cmd, w, pass, ({ bo }) => withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(session, config);
      const v = await t.verifyTicket(q, { verificationCode: false });
      const r = await t.recordUsage(v, event);
      await bo.recordReceipt({ encoded: r.encoded, transaction: r.sym }, `cli:${opts.gateId}`);
      const { receiptJson, usageState } = await format();
      emit(cmd, { ok: true, mode: t.mode, ...receiptJson(r) }, `${opts.event} recorded on ${r.tid} at ${opts.station}: now ${usageState(v.usage.state)}, counter ${r.counter}; ${receiptCheck(r)}`);
    }));
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
    const pass = await passphrase();
    const config = terminalConfig(w, pass, opts);
    const { withBackoffice } = await import('./store.js');
    // The store is opened first: a busy or unreachable store stops the command before the card changes.
    await withBackoffice(cmd, w, pass, ({ bo }) => withCard(cmd, opts, async ({ session }) => {
      const t = await checkingTerminal(session, config);
      const v = await alreadyVoid(t.verifyTicket(q, { verificationCode: false }), q);
      if (!v) {
        // A retried delete: the card already voided this TID (its tombstone says so). Done, not an error.
        const tid = opts.tid!;
        const receipt = (await bo.store.receipts(bo.operator, tid)).find((x) => x.kind === 'deletion');
        emit(cmd, { ok: true, mode: t.mode, alreadyDeleted: true, tid, receiptStored: Boolean(receipt) }, `${tid} was already deleted from this card (nothing to do)${receipt ? '; its deletion receipt is in the back office' : ''}`);
        return;
      }
      const r = await t.deleteTicket(v);
      await bo.recordDeletion({ encoded: r.encoded, transaction: r.sym }, `cli:${opts.gateId}`);
      const { receiptJson } = await format();
      emit(cmd, { ok: true, mode: t.mode, stored: true, ...receiptJson(r) }, `${r.tid} deleted from card ${hex(r.cardSerial)}; ${receiptCheck(r)}; receipt stored in the back office (and ${r.encoded.length} bytes in --json)`);
    }));
  });

  const rebook = program
    .command('rebook')
    .description('rebook (改簽) a ticket: seal its replacement with the changed fields, then delete the old one on the card and load the new one')
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
    const [{ IssuingTerminal, isDuplicate }, { StoreConflictError }, { withBackoffice }, { faceJson, receiptJson }] = await Promise.all([
      import('../issuing.js'),
      import('../../backoffice/store/store.js'),
      import('./store.js'),
      format(),
    ]);
    const pass = await passphrase();
    const config = terminalConfig(w, pass, opts);
    await withBackoffice(cmd, w, pass, async ({ bo }) => {
      await withCard(cmd, opts, async ({ session }) => {
        const t = await checkingTerminal(session, config);
        const old = await alreadyVoid(t.verifyTicket({ tid: opts.tid }), { tid: opts.tid });
        if (!old) {
          // A retried rebook: the old ticket is void on the card; if its replacement is on the card too, it is done.
          const was = await bo.store.ticket(bo.operator, opts.tid);
          const next = was?.replacedBy ? await bo.store.ticket(bo.operator, was.replacedBy) : undefined;
          if (!next || next.cardSerial !== was!.cardSerial || next.status === 'cancelled') throw new UsageError(`${opts.tid} is already deleted from this card and the store names no replacement on it: issue one with \`eticket issue\``);
          const issuing = new IssuingTerminal(session, { authorize: w.issuerAuthorizer(() => pass) });
          let seq = next.sequenceNumber;
          try {
            seq = (await issuing.load(next.sealed)).sequenceNumber;
          } catch (e) {
            if (!isDuplicate(e)) throw e;
          }
          await bo.markLoaded(next.tid, seq);
          // Killed between the card's DELETE and the store's commit, the deletion receipt is lost with the process:
          // the store then still has the old ticket open, and says so rather than closing it on the card's word.
          const deletionStored = was!.status === 'deleted';
          emit(cmd, { ok: true, alreadyRebooked: true, tid: opts.tid, replacement: next.tid, sequenceNumber: seq, deletionReceiptStored: deletionStored }, [
            `${opts.tid} was already rebooked as ${next.tid}, which is on the card (nothing more to do)`,
            ...(deletionStored ? [] : [`  warning: the store has no deletion receipt for ${opts.tid} (the run that deleted it stopped before storing it): it stays open in the back office`]),
          ]);
          return;
        }
        const [{ timeZoneOf, withLocalValidity }, { parseServiceDate }] = await Promise.all([import('./timezone.js'), import('../../sdk/fields.js')]);
        // A new service date's validity starts at its midnight in the operator's time zone.
        const request = changes.serviceDate === undefined ? replacement(old.face, changes, opts.newTid) : withLocalValidity(replacement(old.face, changes, opts.newTid), timeZoneOf(cmd, w.config.timeZone), parseServiceDate);
        const issuing = new IssuingTerminal(session, { authorize: w.issuerAuthorizer(() => pass) });
        const creds = await issuing.credentials();
        // The replacement is sealed (TID, seat, validity all checked by the back office) before anything changes on
        // the card: a refusal leaves the passenger's old ticket as it was. Its request key makes a retry after a
        // crash find this same replacement instead of sealing a second one.
        let issued;
        try {
          issued = await bo.issue({ request, card: creds, replaces: opts.tid, requestKey: rebookKey(opts.tid, request, creds.serial) });
        } catch (e) {
          if (e instanceof StoreConflictError) throw new UsageError(`${e.message}; nothing changed on the card: ${opts.tid} is still valid`);
          throw e;
        }
        // The view VERIFY showed is read again after the issuing terminal's commands, then the old ticket deleted.
        const current = await t.verifyTicket({ tid: opts.tid });
        const receipt = await t.deleteTicket(current);
        // The verified deletion receipt is stored (closing and refunding the old ticket) before the replacement loads.
        await bo.recordDeletion({ encoded: receipt.encoded, transaction: receipt.sym }, `cli:${opts.gateId}`);
        let seq: number | undefined;
        try {
          seq = (await issuing.load(issued.ticket.sealed)).sequenceNumber;
        } catch (e) {
          if (!isDuplicate(e)) throw e;
        }
        await bo.markLoaded(issued.ticket.tid, seq);
        const face = issued.face;
        emit(cmd, { ok: true, deleted: receiptJson(receipt), issued: { sequenceNumber: seq, face: faceJson(face), bill: issued.bill && JSON.parse(issued.bill.document) } }, [`${opts.tid} deleted (receipt verified and stored)`, `${face.tid} issued in its place${seq ? ` (slot ${seq})` : ''}`]);
      });
    });
  });
}

/** The request key of a rebooking: the same old ticket, changes and card give the same replacement on a retry. */
function rebookKey(tid: string, request: TicketRequest, serial: Uint8Array): string {
  const canonical = JSON.stringify(request, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : typeof v === 'bigint' ? v.toString() : v));
  return `rebook:${tid}:${hex(serial)}:${createHash('sha256').update(canonical).digest('hex')}`;
}

/** The view, or undefined when the card says the TID was deleted (void) and the query named that TID: a retry. */
async function alreadyVoid(view: Promise<TicketView>, q: TicketQuery): Promise<TicketView | undefined> {
  try {
    return await view;
  } catch (e) {
    if (e instanceof TicketNotFoundError && e.status === 'void' && 'tid' in q) return undefined;
    throw e;
  }
}

/** The new request: the old face's own fields, overridden; server-filled fields recomputed. */
function replacement(old: TicketFace, changes: Record<string, unknown>, newTid?: string): TicketRequest {
  const { version: _v, operator: _o, tid: _t, issuedAt: _i, card: _c, validFrom, validUntil, ...kept } = old;
  const base: Record<string, unknown> = { ...kept };
  // Validity follows a changed service date unless given explicitly.
  if (changes.serviceDate === undefined) Object.assign(base, { validFrom, validUntil });
  return toRequest({ ...base, ...changes, ...(newTid ? { tid: newTid } : {}) });
}

/** `eticket verify FILE|-`: the verdict for a ticket, bill or receipt, against the store's key history. */
async function arbitrateFile(cmd: Command, w: WorkDir, file: string): Promise<void> {
  if (file !== '-' && !existsSync(file)) throw new UsageError(`${file} does not exist`);
  if (file !== '-' && statSync(file).isDirectory()) throw new UsageError(`${file} is a directory, not a file to verify`);
  if (file !== '-' && statSync(file).size > 1 << 20) throw new UsageError(`${file} is over 1 MiB: not a ticket, bill or receipt`);
  const text = readFileSync(file === '-' ? 0 : file, 'utf8');
  const [{ arbitrate, parseEvidence }, { withBackoffice }] = await Promise.all([import('../../backoffice/arbitration.js'), import('./store.js')]);
  let evidence: Evidence;
  try {
    evidence = parseEvidence(text);
  } catch (e) {
    if (e instanceof CryptoError) throw new UsageError(e.message);
    throw e;
  }
  // The passphrase only opens the checking master key, which sym receipts need; everything else is public.
  const pass = process.env.ETICKET_PASSPHRASE || (evidence.kind === 'receipt' && evidence.transaction ? await passphrase() : undefined);
  const verdict = await withBackoffice(cmd, w, pass, async ({ store, bo }) =>
    arbitrate(evidence, { history: await store.authorityKeys(), cardTrust: bo.keys.cardTrust, masterKeys: bo.keys.masterKeys(), card: (s) => store.card(s) }),
  );
  const who = verdict.signer ? `${verdict.signer.role} key ${verdict.signer.keyId}${verdict.signer.subject ? ` (${verdict.signer.subject})` : ''}` : 'no known key';
  emit(
    cmd,
    verdict,
    verdict.ok
      ? [`valid ${verdict.kind}: signed by ${who}${verdict.signedAt ? ` at ${verdict.signedAt}` : ''}${verdict.validAtTime === undefined ? '' : verdict.validAtTime ? ', valid at that time' : ''}`, `  ${JSON.stringify(verdict.subject)}`]
      : `INVALID ${verdict.kind}: ${verdict.reason}`,
  );
  if (!verdict.ok) throw new ExitStatus(EXIT.CRYPTO);
}
