// `eticket issue` (ticket server → authentication server → issuing terminal, one ticket or a batch) and
// `eticket load` (first ciphertexts sealed earlier with `issue --out`, loaded onto a card later).

import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { accessSync, appendFileSync, constants as fsConstants, existsSync, fstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { fromHex, hex } from '../../sdk/bytes.js';
import { CardStatusError, InvalidInputError } from '../../sdk/errors.js';
import type { TicketRequest } from '../../sdk/roles/ticket-server.js';
import type { CardCredentials } from '../../sdk/roles/trust.js';
import { SW } from '../../sdk/spec.js';
import type { FciInfo, IssuingTerminal } from '../issuing.js';
import { holderOf, toRequest, HOLDER_FIELDS, type BatchItem } from './batch.js';
import type { HolderRecord } from '../../sdk/holder.js';
import { addCardOptions, cardHint, emit, errorLine, EXIT, ExitStatus, globals, openCard, passphrase, requireImage, UsageError, workDir, workDirPath, type CardHandle, type CardOptions } from './context.js';
import type { IssueOutcome } from '../../backoffice/service.js';
import type { OpenedBackoffice } from './store.js';
import type { IssueOffice, KeyHandover } from './issue-office.js';

export type IssueStatus = 'loaded' | 'already_on_card' | 'issued_to_other_card' | 'sealed' | 'failed' | 'not_attempted' | 'interrupted';

export interface IssueResult {
  line?: number;
  status: IssueStatus;
  tid?: string;
  sequenceNumber?: number;
  error?: string;
  sw?: string;
  /** issued_to_other_card: the card an earlier run loaded this row onto. */
  card?: string;
}

/** Flags for one ticket; commander's camelCase of each is the TicketRequest field name. */
const TICKET_FLAGS: [string, string][] = [
  ['--tid <tid>', 'ticket id (default: <operator>-<date>-<counter> from the store)'],
  ['--service-date <date>', 'date of travel / event, YYYY-MM-DD'],
  ['--train <code>', 'train, route or event code'],
  ['--origin <station>', 'origin station or venue'],
  ['--destination <station>', 'destination station'],
  ['--departure <time>', 'departure, HH:MM or minutes after midnight'],
  ['--coach <n>', 'coach (car)'],
  ['--seat <seat>', 'seat'],
  ['--travel-class <class>', 'class of travel'],
  ['--fare <minor>', 'fare in minor units (cents, fen)'],
  ['--currency <code>', 'ISO 4217 currency'],
  ['--passenger <name>', 'passenger name'],
  ['--valid-from <time>', "start of validity, ISO 8601 or epoch seconds (default: service day 00:00 in the operator's time zone, --tz)"],
  ['--valid-until <time>', 'end of validity (default: service day + 28 h)'],
  ['--kind <kind>', 'rail, metro, bus, event (or 1-4)'],
  ['--flags <bits>', 'bit 0 transferable, bit 1 return, bit 2 concession'],
  ['--max-entries <n>', 'entries allowed (default 1; a pass up to 255)'],
  ['--pricing <pricing>', 'fixed (the fare, paid at sale; default) or per-trip (a pass: trips priced by the fare table, charged to the seller)'],
];
export const TICKET_FIELDS = ['tid', 'serviceDate', 'train', 'origin', 'destination', 'departure', 'coach', 'seat', 'travelClass', 'fare', 'currency', 'passenger', 'validFrom', 'validUntil', 'kind', 'flags', 'maxEntries', 'pricing'];

export function addTicketFlags(cmd: Command, hidden: string[] = []): Command {
  for (const [flags, desc] of TICKET_FLAGS) {
    if (hidden.some((h) => flags.startsWith(h))) continue;
    cmd.option(flags, desc);
  }
  return cmd;
}

/** Real-name flags: the holder record goes to the back office, encrypted; the card gets 95/96 only. */
export function addHolderFlags(cmd: Command): Command {
  return cmd
    .option('--holder-name <name>', 'real-name ticket: holder\'s name (kept encrypted by the back office, never on the card)')
    .option('--holder-document-type <type>', 'real-name ticket: ID document type, e.g. id-card, passport')
    .option('--holder-document-number <number>', 'real-name ticket: ID document number')
    .option('--holder-photo <file>', 'real-name ticket: holder\'s photo, JPEG or PNG, at most 32 KiB');
}

/** The holder from --holder-* flags, or undefined when none is given. */
export function holderFromFlags(opts: { holderName?: string; holderDocumentType?: string; holderDocumentNumber?: string; holderPhoto?: string }): HolderRecord | undefined {
  try {
    return holderOf({ holderName: opts.holderName, holderDocumentType: opts.holderDocumentType, holderDocumentNumber: opts.holderDocumentNumber, holderPhoto: opts.holderPhoto });
  } catch (e) {
    throw new UsageError(`--holder-*: ${(e as Error).message}`);
  }
}

export function ticketFlagValues(opts: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(TICKET_FIELDS.filter((f) => opts[f] !== undefined).map((f) => [f, opts[f]]));
}

/** Progress on stderr when it is a terminal: a bar redrawn in place, cleared before any other output. */
class Progress {
  private readonly on: boolean;
  private done = 0;
  constructor(private readonly total: number, enabled: boolean) {
    // A streamed batch has no total up front (0): the count alone is drawn.
    this.on = enabled && process.stderr.isTTY === true && total !== 1;
  }
  /** Result lines not yet written: without a bar, a chunk's lines go out in one write (a pipe takes one syscall each). */
  private held: string[] = [];
  print(line: string): void {
    if (!this.on) {
      this.held.push(line);
      return;
    }
    process.stderr.write('\r\x1b[K');
    console.log(line);
    this.draw();
  }
  get heldLines(): number {
    return this.held.length;
  }
  /** Write the lines held so far. */
  flush(): void {
    if (!this.held.length) return;
    console.log(this.held.join('\n'));
    this.held = [];
  }
  tick(): void {
    this.done++;
    this.draw();
  }
  private draw(): void {
    if (!this.on) return;
    if (this.total === 0) {
      process.stderr.write(`\r${this.done} row(s) done`);
      return;
    }
    const width = 30;
    const filled = Math.round((this.done / this.total) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total}`);
  }
  end(): void {
    if (this.on) process.stderr.write('\r\x1b[K');
  }
}

function resultLine(r: IssueResult): string {
  const where = r.line !== undefined ? `line ${r.line}: ` : '';
  switch (r.status) {
    case 'loaded':
      return `${where}loaded ${r.tid} (slot ${r.sequenceNumber})`;
    case 'already_on_card':
      return `${where}${r.tid ?? 'ticket'} already on card (not loaded again)`;
    case 'sealed':
      return `${where}sealed ${r.tid}`;
    case 'issued_to_other_card':
      return `${where}${r.tid} was issued to card ${r.card} by an earlier run (not issued again)`;
    case 'not_attempted':
      return `${where}not attempted: ${r.error}`;
    case 'interrupted':
      return `${where}INTERRUPTED${r.tid ? ` ${r.tid}` : ''}: ${r.error}`;
    default:
      return `${where}FAILED${r.tid ? ` ${r.tid}` : ''}: ${r.error}`;
  }
}

function failure(e: unknown, line?: number, tid?: string): IssueResult {
  if (e instanceof CardStatusError) {
    const hint = cardHint(e);
    return { line, tid, status: 'failed', error: `${e.swName} (${e.description})${hint ? `: ${hint}` : ''}`, sw: e.sw.toString(16).toUpperCase() };
  }
  if (e instanceof InvalidInputError) return { line, tid, status: 'failed', error: e.message };
  throw e; // transport faults and bugs end the run: the card's state is unknown
}

let issuingModule: typeof import('../issuing.js') | undefined;

/** Load one first ciphertext; ALREADY_EXISTS is a success for an idempotent re-run. */
async function loadOne(issuing: IssuingTerminal, sealed: Uint8Array, tid: string | undefined, line?: number): Promise<IssueResult> {
  // Loaded once (a dynamic import a row cost a few turns of the event loop each); the issuing terminal's module.
  const { isDuplicate } = (issuingModule ??= await import('../issuing.js'));
  try {
    const r = await issuing.load(sealed);
    return { line, status: 'loaded', tid: r.tid, sequenceNumber: r.sequenceNumber };
  } catch (e) {
    if (isDuplicate(e)) return { line, status: 'already_on_card', tid };
    return failure(e, line, tid);
  }
}

interface IssueRun {
  office: IssueOffice;
  creds: CardCredentials;
  issuing?: IssuingTerminal;
  out?: string;
  sellerId?: string;
  /** Tickets the card took that the store does not yet call loaded: marked a chunk at a time (markLoadedChunk). */
  loaded: { tid: string; sequenceNumber?: number }[];
  /**
   * The barrier of an image card's LOADs (group commit, CardHandle.groupCommit): called before they are reported or
   * marked loaded, so that neither ever names a LOAD a crash of the machine could still take back.
   */
  flushCard?: () => void;
  /** The store's "loaded" marks sent and not yet awaited (flushLoaded); settled by settleMarks. */
  marks: Promise<unknown>[];
}

/**
 * Tickets marked loaded in the store per statement. Until then a loaded ticket is "sealed" in the store, as after a
 * crash between LOAD and the mark: a re-run (or `load --pending`) finds it on the card (ALREADY_EXISTS) and marks it.
 */
const MARK_LOADED_CHUNK = 64;

/**
 * Mark the tickets the card took so far as loaded in the store (one statement), after the card's barrier for their
 * LOADs. The batch does not wait for the statement: it queues behind the store's chunk transaction under way, and the
 * card goes on loading meanwhile; settleMarks() awaits every mark sent (before the summary, and before the store closes).
 */
function flushLoaded(run: IssueRun): void {
  if (!run.loaded.length) return;
  run.flushCard?.();
  const mark = run.office.markLoadedMany(run.loaded.splice(0, run.loaded.length));
  mark.catch(() => undefined); // awaited by settleMarks
  run.marks.push(mark);
}

/** Every mark sent so far done; the first failure is thrown. */
async function settleMarks(run: IssueRun): Promise<void> {
  const marks = run.marks.splice(0, run.marks.length);
  await Promise.all(marks);
}

/** What makes a batch line the same line on a re-run: card, line number and content (as the old ledger did). */
export function lineFingerprint(serial: string, line: number, request: TicketRequest): string {
  return createHash('sha256').update(JSON.stringify([serial, line, request])).digest('hex').slice(0, 32);
}

/** Rows whose back-office records (TIDs, tickets, sealed tickets, bills) one transaction writes (Backoffice.issueMany) before their LOADs. */
export const ISSUE_CHUNK = 64;

/**
 * The first chunk's size: chunks then double up to ISSUE_CHUNK. The card waits for the first chunk's issuance, so a
 * small one starts the LOADs early; a later chunk's issuance is started before the chunk before it is loaded (the
 * pipeline in registerIssue).
 */
export const FIRST_CHUNK = 8;

/**
 * Chunks whose issuance is under way while the card loads the one before them. Two: the store's thread starts the next
 * chunk as soon as it commits one (its signatures on the thread pool, its statements), instead of waiting for the
 * card to finish a chunk before it hears of the next.
 */
export const ISSUE_AHEAD = 2;

/** A chunk of rows and its issuance (Backoffice.issueMany), under way or done. */
interface IssuingChunk {
  rows: PendingRow[];
  issuing: Promise<void>;
}

/** A row on its way: read and checked, waiting for its chunk's issuance, then its LOAD. */
interface PendingRow {
  line?: number;
  /** A row answered without issuance (a bad line, a conflicting duplicate tid). */
  result?: IssueResult;
  request?: TicketRequest;
  requestKey?: string;
  holder?: HolderRecord;
  issued?: { outcome: IssueOutcome } | { error: Error };
}

/**
 * One issued row (its chunk's back-office transaction committed: TID, TF_V, sealing and the bill recorded before
 * anything reaches the card), then LOAD, then "loaded" in the store a chunk at a time. A re-run, also after a
 * crash or kill -9 at any point, finds the row's ticket in the store and loads the same sealed ticket: nothing
 * is issued twice.
 */
async function settle(run: IssueRun, p: PendingRow): Promise<IssueResult & { sealed?: Uint8Array }> {
  const { line, requestKey } = p;
  let tid = p.request!.tid;
  const issued = p.issued!;
  if ('error' in issued) {
    const { NotFoundError, StoreConflictError } = await import('../../backoffice/store/store.js');
    const e = issued.error;
    if (e instanceof StoreConflictError && e.reason === 'tid_taken' && requestKey) {
      const earlier = await run.office.tidForRequest(requestKey);
      const t = earlier ? await run.office.ticket(earlier) : undefined;
      if (t?.status === 'loaded') return { line, tid: t.tid, status: 'issued_to_other_card', card: t.cardSerial };
      if (t) return { line, tid: t.tid, status: 'failed', error: `sealed for card ${t.cardSerial} by an earlier run, not known to be loaded: \`eticket load --pending\` on that card first` };
    }
    if (e instanceof StoreConflictError || e instanceof NotFoundError) return { line, tid, status: 'failed', error: e.message };
    return failure(e, line, tid);
  }
  tid = issued.outcome.ticket.tid;
  const sealed = issued.outcome.ticket.sealed;
  if (!run.issuing) return { line, status: 'sealed', tid, sealed };
  const r = await loadOne(run.issuing, sealed, tid, line);
  if (r.status === 'loaded' || r.status === 'already_on_card') {
    run.loaded.push({ tid: tid!, sequenceNumber: r.sequenceNumber });
    if (run.loaded.length >= MARK_LOADED_CHUNK) flushLoaded(run);
  } else if (r.sw === SW.NOT_ENOUGH_MEMORY.toString(16).toUpperCase() && tid) await run.office.withdrawUnloaded([tid]);
  return r;
}

function readCredentials(file: string): CardCredentials {
  if (!existsSync(file)) throw new UsageError(`credentials file ${file} does not exist: write it with \`eticket card info --card <image> --json > ${file}\``);
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    const c = j.credentials ?? j;
    return {
      suite: c.suite,
      serial: fromHex(c.serial),
      encryptionCertificate: c.encryptionCertificate ? fromHex(c.encryptionCertificate) : undefined,
      signingCertificate: c.signingCertificate ? fromHex(c.signingCertificate) : undefined,
      identity: c.identity,
    };
  } catch (e) {
    throw new UsageError(`${file} is not the JSON of \`eticket card info --json\`: ${(e as Error).message}`);
  }
}

async function requirePersonalised(issuing: IssuingTerminal): Promise<FciInfo> {
  const info = await issuing.select();
  if (info.lifecycle !== 'OPERATIONAL') throw new UsageError('the card is blank: personalise it first with `eticket card personalize`');
  return info;
}

/** The batch input failed mid-way (an I/O error): the rows read before it are reported, the rest of the input is unknown. */
interface InputFailure {
  afterLine: number;
  error: string;
}

function finish(cmd: Command, results: IssueResult[], batch: boolean, interrupted?: unknown, inputFailure?: InputFailure): void {
  const count = (st: IssueStatus) => results.filter((r) => r.status === st).length;
  const failed = count('failed');
  const lines = (sts: IssueStatus[]) => results.filter((r) => sts.includes(r.status) && r.line !== undefined).map((r) => r.line!);
  const summary = {
    summary: true,
    total: results.length,
    loaded: count('loaded'),
    alreadyOnCard: count('already_on_card'),
    issuedToOtherCard: count('issued_to_other_card'),
    sealed: count('sealed'),
    failed,
    notAttempted: count('not_attempted'),
    interrupted: count('interrupted'),
    // Which rows are done and which remain, by line: a script re-runs the remaining ones (onto another card).
    done: lines(['loaded', 'already_on_card', 'issued_to_other_card', 'sealed']),
    remaining: lines(['failed', 'not_attempted', 'interrupted']),
    ...(interrupted ? { stoppedBy: errorLine(interrupted) } : {}),
    // `remaining` lists only rows that were read: the input after this line was never seen, so the batch is not done.
    ...(inputFailure ? { inputUnreadAfterLine: inputFailure.afterLine, inputError: inputFailure.error } : {}),
  };
  if (batch) {
    const more = [summary.issuedToOtherCard && `${summary.issuedToOtherCard} on another card`, summary.notAttempted && `${summary.notAttempted} not attempted`, summary.interrupted && `${summary.interrupted} interrupted`, inputFailure && `the input unread after line ${inputFailure.afterLine}`].filter(Boolean);
    emit(cmd, summary, `${summary.total} ticket(s): ${summary.loaded} loaded, ${summary.alreadyOnCard} already on card, ${summary.sealed} sealed, ${failed} failed${more.length ? `, ${more.join(', ')}` : ''}`);
    if (interrupted) throw new ExitStatus(EXIT.TRANSPORT);
    if (failed || summary.notAttempted || summary.interrupted || inputFailure) throw new ExitStatus(EXIT.PARTIAL);
  } else if (failed) {
    throw new ExitStatus(results[0].sw ? EXIT.CARD_REFUSED : EXIT.USAGE);
  }
}

export function registerIssue(program: Command): void {
  const issue = program
    .command('issue')
    .description('issue tickets onto a card: one from flags, or a batch from CSV or JSON Lines (--from)')
    .option('--from <file>', 'batch file: CSV with a header row of field names, or JSON Lines (one ticket object a line); - for stdin')
    .addOption(new Option('--format <format>', 'batch format when the file name does not tell').choices(['csv', 'jsonl']))
    .option('--out <file>', 'seal only: write first ciphertexts to <file> (JSON Lines; raw bytes if it ends in .bin) instead of loading them')
    .option('--credentials <file>', 'with --out: seal to the card described by `eticket card info --json`, without the card at hand')
    .option('--batch <name>', 'what re-runs know this batch by (default: the file name; stdin: "stdin"): rows without tid are not issued twice within one batch name')
    .option('--seller <id>', 'record the tickets and bills as sold by this registered seller (default: the operator)');
  addCardOptions(issue);
  addTicketFlags(issue);
  addHolderFlags(issue);
  issue.addHelpText(
    'after',
    `
Batch columns / JSON keys: ${TICKET_FIELDS.join(', ')}. serviceDate is YYYY-MM-DD, times ISO 8601
or epoch seconds. A bad line is reported with its number and the rest go on (exit status 4); a full card
stops the batch (the rest "not attempted", exit 4); a pulled card too (exit 3). The summary (JSON under
--json) lists the rows done and remaining. Re-running a batch, onto the same card or the next one, is safe:
nothing is issued twice. --from - reads CSV or JSON Lines from stdin (told by the first line).
Real-name tickets: columns ${HOLDER_FIELDS.join(', ')} (photo: a file next to the batch), or
--holder-* for one ticket. The holder is kept encrypted by the back office and never written to the card,
the output or any log (docs/realname.md); such a line has no passenger.

Examples:
  $ eticket issue --card card.img --service-date 2026-11-22 --train G1 --origin BJS --destination SHH --seat 12A
  $ eticket issue --card card.img --from tickets.csv --json
  $ eticket issue --card card.img --from tickets.csv --out sealed.jsonl   # seal now, load later`,
  );
  issue.action(async (opts: CardOptions & Record<string, unknown> & { from?: string; format?: string; out?: string; credentials?: string; seller?: string; batch?: string }, cmd: Command) => {
    const flags = ticketFlagValues(opts);
    const holder = holderFromFlags(opts as Parameters<typeof holderFromFlags>[0]);
    if (opts.from && (Object.keys(flags).length || holder)) throw new UsageError(`give ticket fields as flags or in --from ${opts.from}, not both`);
    if (holder && flags.passenger !== undefined) throw new UsageError('a real-name ticket (--holder-*) carries no --passenger');
    if (!opts.from && !flags.serviceDate) throw new UsageError('nothing to issue: give --from <file>, or at least --service-date for one ticket');
    if (opts.credentials && !opts.out) throw new UsageError('--credentials is for sealing to a file: add --out <file>');
    if (opts.credentials && (opts.card || opts.reader)) throw new UsageError('give --credentials or a card (--card / --reader), not both');
    if (opts.out) requireWritable(opts.out);

    const batch = Boolean(opts.from);
    // Rows stream from the file; the first is read now, so an empty file, a directory or a bad header stops
    // here (exit 1), before the card or the store is touched.
    const { batchItems, rowKey } = await import('./batch-input.js');
    const batchName = opts.batch ?? (opts.from && opts.from !== '-' ? basename(opts.from) : 'stdin');
    let rows: AsyncGenerator<BatchItem>;
    if (opts.from) {
      // holderPhoto names a file next to the batch (stdin: the current directory).
      rows = batchItems(opts.from, opts.format, opts.from === '-' ? '.' : dirname(resolve(opts.from)));
    } else {
      rows = (async function* () {
        yield { line: undefined as unknown as number, request: toRequest(flags), ...(holder ? { holder } : {}) };
      })();
    }
    let first: IteratorResult<BatchItem>;
    try {
      first = await rows.next();
    } catch (e) {
      if (e instanceof InvalidInputError && !(e instanceof UsageError)) throw new UsageError(e.message);
      // An I/O error before the first row (a reset socket, a disk): nothing was read or done; the input's error, not ours.
      if ((e as NodeJS.ErrnoException)?.code) throw new UsageError(`${opts.from === '-' ? 'standard input' : opts.from} could not be read: ${(e as Error).message}; nothing was issued`);
      throw e;
    }
    if (first.done) throw new UsageError(`${opts.from === '-' ? 'standard input' : opts.from} holds no tickets (empty, or a CSV header only)`);
    // Not a working directory: told before the passphrase is asked for (loading it whole is left to below).
    if (!existsSync(join(workDirPath(cmd), 'eticket.json'))) await workDir(cmd);
    const pass = await passphrase();
    // The back office opens first, on its own thread where it can (issue-office.ts): PGlite boots there while this
    // thread loads the working directory, checks the passphrase and opens the card. Closed in the finally below
    // whatever stops the command (a working directory that is not one stops both, told by this thread).
    const [{ storeSettings }, { openIssueOffice }] = await Promise.all([import('./store-open.js'), import('./issue-office.js')]);
    let office: IssueOffice | undefined;
    // The authority key, once this thread has opened it (the passphrase checked), goes to the store's thread too.
    let handOver!: (h: KeyHandover) => void;
    const authorityKey = new Promise<KeyHandover>((resolve) => (handOver = resolve));
    // Aborted when the command fails before the store is open: no wait for another process's lock (--wait) then.
    const giveUp = new AbortController();
    const officeOpening = openIssueOffice(workDirPath(cmd), pass, storeSettings(cmd), authorityKey, giveUp.signal).then((o) => (office = o));
    officeOpening.catch(() => undefined); // awaited below; a failure before then is not unhandled
    let card: CardHandle | undefined;
    let run: IssueRun | undefined;
    const json = globals(cmd).json;
    const progress = new Progress(batch ? 0 : 1, !json);
    try {
      const w = await workDir(cmd);
      // Default validity starts at the service day's midnight in the operator's time zone.
      const [{ timeZoneOf, withLocalValidity }, { parseServiceDate }] = await Promise.all([import('./timezone.js'), import('../../sdk/fields.js')]);
      const tz = timeZoneOf(cmd, w.config.timeZone);
      const local = (it: BatchItem): BatchItem => {
        if ('error' in it) return it;
        try {
          return { ...it, request: withLocalValidity(it.request, tz, parseServiceDate) };
        } catch (e) {
          if (e instanceof InvalidInputError) return { line: it.line, error: e.message };
          throw e;
        }
      };
      // A wrong passphrase stops here, before the card is touched and before anything is issued (the key's scrypt
      // runs on the thread pool meanwhile; loadAuthoritySigner then finds it opened).
      await w.warmAuthoritySigner(pass);
      w.loadAuthoritySigner(pass);
      const opened = w.handOverAuthoritySigner(pass);
      handOver(opened ? { key: opened } : { derive: true });
      const [{ IssuingTerminal }, { TransportError }] = await Promise.all([import('../issuing.js'), import('../../sdk/errors.js')]);
      let issuing: IssuingTerminal | undefined;
      // Told before anything is opened: a credentials file that cannot be read, a missing image.
      let creds = opts.credentials ? readCredentials(opts.credentials) : undefined;
      if (!creds && opts.card) requireImage(opts.card);
      // The card opens while the store does (the card's SELECT and issuer authorisation while PGlite boots); the first
      // failure is reported (the card's first, as before), and whatever did open is closed below.
      const ready = await Promise.allSettled([
        opts.credentials
          ? Promise.resolve(undefined)
          : (async () => {
              card = await openCard(cmd, opts);
              const t = new IssuingTerminal(card.session, { authorize: w.issuerAuthorizer(() => pass) });
              await requirePersonalised(t);
              return { t, creds: await t.credentials() };
            })().catch((e: unknown) => {
              giveUp.abort(); // the card failed: the store need not be waited for (its error is the one reported)
              throw e;
            }),
        officeOpening,
      ]);
      for (const o of ready) if (o.status === 'rejected') throw o.reason;
      const onCard = (ready[0] as PromiseFulfilledResult<{ t: IssuingTerminal; creds: CardCredentials } | undefined>).value;
      if (onCard) ({ t: issuing, creds } = onCard);
      if (!creds || !office) throw new Error('unreachable: the card and the store opened without credentials or a store');
      if (opts.seller) {
        const seller = await office.client(opts.seller);
        if (!seller || seller.role !== 'seller') throw new UsageError(`no seller ${opts.seller} is registered: \`eticket seller add ${opts.seller}\``);
      }
      // An image card's LOADs are committed as a group: one barrier per chunk (before its rows are reported and marked
      // loaded), not one per LOAD (docs/cli.md, "Durability").
      const groupCommit = opts.out ? undefined : card?.groupCommit;
      groupCommit?.defer(true);
      run = { office, creds, issuing: opts.out ? undefined : issuing, out: opts.out, sellerId: opts.seller, loaded: [], flushCard: groupCommit && (() => groupCommit.flush()), marks: [] };
      if (opts.out && !opts.out.endsWith('.bin')) writeFileSync(opts.out, '');
      const results: IssueResult[] = [];
      // The same tid on two rows of one file: the first row wins, a later one with other content is refused.
      const tids = new Map<string, { line: number; content: string }>();
      // Once set, the remaining rows are reported "not attempted" with this reason (card full, card pulled).
      let stop: string | undefined;
      let interrupted: unknown;
      let inputFailure: InputFailure | undefined;
      // `counted: false`: a line that is no row (the input failing), printed but left out of the summary's counts.
      const report = (r: IssueResult, counted = true) => {
        if (counted) results.push(r);
        if (json) progress.print(JSON.stringify(r));
        else if (batch || r.status !== 'failed') progress.print(resultLine(r));
        else console.error(`eticket: ${r.error}`);
      };
      // Rows are issued a chunk at a time (one back-office transaction), then loaded and reported in file order.
      // A chunk is up to ISSUE_CHUNK rows, bad ones included: a file of bad lines is reported as it is read, not held.
      // Pipeline: a chunk's issuance is started before the chunk before it is loaded, and interleaves with its LOADs
      // wherever either waits (a reader's answer, a store statement); every row is still issued (committed in the
      // store) before its LOAD, and reported in file order.
      let pending: PendingRow[] = [];
      let chunkLimit = FIRST_CHUNK;
      const inFlight: IssuingChunk[] = [];
      let rowsTaken = 0;
      const issueChunk = (r: IssueRun, rows: PendingRow[]): IssuingChunk => {
        const todo = rows.filter((p) => p.request && !stop);
        if (!todo.length) return { rows, issuing: Promise.resolve() };
        const issuing = r.office.issueMany(todo.map((p) => ({ request: p.request!, card: r.creds, requestKey: p.requestKey, sellerId: r.sellerId, holder: p.holder }))).then((issued) => issued.forEach((x, k) => (todo[k].issued = x)));
        // Awaited by settleChunk; a failure before then must not count as unhandled.
        issuing.catch(() => undefined);
        return { rows, issuing };
      };
      // The pending rows become a chunk being issued; the oldest chunk is loaded meanwhile, once ISSUE_AHEAD are under way.
      const flush = async (r: IssueRun) => {
        inFlight.push(issueChunk(r, pending));
        pending = [];
        chunkLimit = Math.min(ISSUE_CHUNK, chunkLimit * 2);
        if (inFlight.length > ISSUE_AHEAD) await settleChunk(r, inFlight.shift()!);
      };
      // Everything read so far issued, loaded and reported.
      const drain = async (r: IssueRun) => {
        if (pending.length) {
          inFlight.push(issueChunk(r, pending));
          pending = [];
        }
        while (inFlight.length) await settleChunk(r, inFlight.shift()!);
      };
      const settleChunk = async (r: IssueRun, c: IssuingChunk) => {
        await c.issuing;
        const chunk = c.rows;
        // Tickets this chunk sealed that never went to the card because the batch stopped: released again (as if
        // never issued), so the rows go to the next card like any other not attempted row.
        const unsent: string[] = [];
        // The chunk's results are reported after the card's barrier for its LOADs (group commit), in file order.
        const held: IssueResult[] = [];
        try {
          await settleRows(r, chunk, unsent, (x) => held.push(x));
        } finally {
          let unflushed: unknown;
          try {
            r.flushCard?.();
          } catch (e) {
            unflushed = e;
          }
          // A barrier that failed (the disk): the card answered those LOADs, but they are not known to be durable, so
          // they are not reported loaded; the store still calls them sealed, and the re-run loads or finds them.
          const took = (x: IssueResult) => x.status === 'loaded' || x.status === 'already_on_card';
          for (const x of held) report(unflushed && took(x) ? { ...x, status: 'interrupted', error: `the card image could not be made durable (${errorLine(unflushed)}); re-run the batch to finish it (nothing is issued twice)` } : x);
          progress.flush();
          if (unflushed) {
            r.loaded.length = 0; // not marked loaded in the store either
            throw unflushed;
          }
        }
        if (unsent.length) await r.office.withdrawUnloaded(unsent);
        flushLoaded(r);
      };
      const settleRows = async (r: IssueRun, chunk: PendingRow[], unsent: string[], report: (x: IssueResult) => void) => {
        for (const p of chunk) {
          if (stop) {
            if (r.issuing && p.issued && 'outcome' in p.issued && p.issued.outcome.status === 'new') unsent.push(p.issued.outcome.ticket.tid);
            report({ line: p.line, status: 'not_attempted', tid: p.request?.tid, error: stop });
            continue;
          }
          if (p.result) {
            report(p.result);
            continue;
          }
          let res: IssueResult & { sealed?: Uint8Array };
          try {
            res = await settle(r, p);
          } catch (e) {
            if (!(e instanceof TransportError) || !batch) throw e;
            // The card went away (pulled, reader gone): this row's state is unknown until a re-run, which finds it.
            interrupted = e;
            stop = `not attempted: the batch stopped at line ${p.line} (${errorLine(e)})`;
            report({ line: p.line, status: 'interrupted', tid: p.request?.tid, error: `${errorLine(e)}; re-run the batch to finish it (nothing is issued twice)` });
            continue;
          }
          if (res.sealed && opts.out) {
            if (opts.out.endsWith('.bin')) writeFileSync(opts.out, res.sealed);
            else appendFileSync(opts.out, JSON.stringify({ line: p.line, tid: res.tid, card: hex(creds.serial), sealed: hex(res.sealed) }) + '\n');
          }
          const { sealed: _s, ...result } = res;
          report(result);
          // A full card takes nothing more: the rest of the batch waits for the next card (the rest of this chunk
          // withdrawn below, the later rows not sealed).
          if (batch && result.sw === SW.NOT_ENOUGH_MEMORY.toString(16).toUpperCase()) stop = `the card is full (line ${p.line}): re-run the batch with another card`;
          progress.tick();
        }
      };
      // The next row. While the input keeps the batch waiting (stdin or a pipe fed by another program), no row read
      // waits much longer than INPUT_IDLE_MS to be issued, loaded and reported: once the oldest unreported row is that
      // old, the next wait of more than INPUT_STALL_MS for input drains what was read.
      const live = run;
      let unreportedSince: number | undefined;
      // A regular file (also as stdin) is all there: its next row never waits for a producer, only for the disk or the
      // thread pool it shares with the signatures, so it is never drained early (that would stall the pipeline).
      const producer = batch && !(opts.from === '-' ? fstatSync(0).isFile() : statSync(opts.from!).isFile());
      const nextOrDrain = async (): Promise<IteratorResult<BatchItem>> => {
        const coming = nextRow(rows);
        if (!producer || (!pending.length && !inFlight.length && !progress.heldLines)) {
          unreportedSince = undefined;
          return coming;
        }
        unreportedSince ??= Date.now();
        let timer: NodeJS.Timeout | undefined;
        const wait = Math.max(INPUT_STALL_MS, INPUT_IDLE_MS - (Date.now() - unreportedSince));
        const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), wait)));
        const first = await Promise.race([coming, idle]);
        clearTimeout(timer);
        if (first !== 'idle') return first;
        await drain(live);
        progress.flush();
        unreportedSince = undefined;
        return coming;
      };
      let next: IteratorResult<BatchItem> = first;
      for (; !next.done; next = await nextOrDrain()) {
        const it = local(next.value);
        const line = batch ? it.line : undefined;
        if ('error' in it && it.error.startsWith(READ_FAILED)) {
          // The input itself failed mid-way: what was read is reported, the rest is unknown.
          await drain(run);
          inputFailure = { afterLine: results.at(-1)?.line ?? 0, error: it.error.slice(READ_FAILED.length) };
          report({ status: 'failed', error: `the batch input could not be read after line ${inputFailure.afterLine}: ${inputFailure.error}; the rows after it were not seen (re-run the whole batch: nothing is issued twice)` }, false);
          break;
        }
        if (stop) {
          // The rows before this one still in chunks (issued ahead, or pending) are reported first: file order.
          if (pending.length || inFlight.length) await drain(run);
          report({ line, status: 'not_attempted', tid: 'request' in it ? it.request.tid : undefined, error: stop });
          if (progress.heldLines >= ISSUE_CHUNK) progress.flush();
          continue;
        }
        if ('error' in it) {
          pending.push({ line, result: { line, status: 'failed', error: it.error } });
          if (pending.length >= chunkLimit) await flush(run);
          continue;
        }
        if (opts.out?.endsWith('.bin') && rowsTaken > 0) throw new UsageError('a .bin output holds one ticket; use a .jsonl name for a batch');
        rowsTaken++;
        if (it.request.tid !== undefined) {
          // The holder counts as content (compared here in memory, never stored or printed).
          const content = JSON.stringify([it.request, it.holder ? { ...it.holder, photo: it.holder.photo ? hex(it.holder.photo) : undefined } : null]);
          const seen = tids.get(it.request.tid);
          if (seen && seen.content !== content) {
            pending.push({ line, result: { line, status: 'failed', tid: it.request.tid, error: `tid ${it.request.tid} is also on line ${seen.line} with other content: not issued (give each ticket its own tid)` } });
            if (pending.length >= chunkLimit) await flush(run);
            continue;
          }
          if (!seen) tids.set(it.request.tid, { line: it.line, content });
        }
        // A row is known by the input up to it (batch-input.ts), not by the card: re-run onto a second card (the first
        // was full) it finds the ticket an earlier run loaded elsewhere instead of issuing it again. Rows with a tid
        // too: without the key their TID on the first card could not be told from a TID given to another ticket.
        // The key never covers the holder (a hash of a name and an ID number is guessable): the back office checks
        // that a re-run names the same holder instead.
        const requestKey = line !== undefined ? rowKey(batchName, line, (next.value as { request: object }).request) : undefined;
        pending.push({ line, request: it.request, requestKey, holder: it.holder });
        if (pending.length >= chunkLimit) await flush(run);
      }
      await drain(run);
      progress.flush();
      progress.end();
      flushLoaded(run);
      await settleMarks(run);
      finish(cmd, results, batch, interrupted, inputFailure);
    } finally {
      progress.flush(); // what was reported before an error stopped the batch
      handOver({ none: true }); // stopped before the key was opened: the store's thread signs nothing (a no-op after)
      if (!office) giveUp.abort();
      // Whatever stopped the batch, the tickets the card took are marked before the store closes.
      if (run && office) {
        try {
          flushLoaded(run);
        } catch {
          // the card's barrier failed: those tickets stay "sealed" in the store, and a re-run finds them on the card
        }
        await settleMarks(run).catch(() => undefined);
      }
      await card?.close().catch(() => undefined);
      await officeOpening.catch(() => undefined); // stopped early (a wrong passphrase): the office may still be opening
      await office?.close().catch(() => undefined);
    }
  });
}

/** `--out`: a file this process can create or overwrite, told before anything is opened or issued (exit 1). */
function requireWritable(file: string): void {
  const path = resolve(file);
  try {
    if (existsSync(path)) {
      if (statSync(path).isDirectory()) throw new UsageError(`--out ${file} is a directory: give a file name`);
      accessSync(path, fsConstants.W_OK);
    } else accessSync(dirname(path), fsConstants.W_OK);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--out ${file} cannot be written: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'its directory does not exist' : (e as Error).message}`);
  }
}

/**
 * How long a row read may wait to be reported while the input keeps the batch waiting: a program feeding stdin a row
 * at a time sees each row done about this long after it wrote it, not when 8 to 64 more rows have filled the chunks.
 */
export const INPUT_IDLE_MS = 200;
/** A wait for a producer's input shorter than this is no stall: the pipeline is left alone. */
export const INPUT_STALL_MS = 20;

/** Marks an input that failed mid-way (an I/O error after rows were read): the rest of the batch is not attempted. */
const READ_FAILED = '\u0000read failed';

async function nextRow(rows: AsyncGenerator<BatchItem>): Promise<IteratorResult<BatchItem>> {
  try {
    return await rows.next();
  } catch (e) {
    // An I/O error (a disk, a socket reset) is the input's, not an internal one: its own message, no stack to report.
    if (e instanceof InvalidInputError) return { done: false, value: { line: 0, error: READ_FAILED + errorLine(e) } };
    if ((e as NodeJS.ErrnoException)?.code) return { done: false, value: { line: 0, error: READ_FAILED + (e as Error).message } };
    throw e;
  }
}

/** First ciphertexts from a file: `issue --out` JSON Lines, hex lines, or one raw blob. */
export function readSealed(file: string): { line?: number; tid?: string; sealed: Uint8Array }[] {
  if (!existsSync(file)) throw new UsageError(`${file} does not exist`);
  const bytes = readFileSync(file);
  const text = bytes.toString('utf8');
  if (!/^[\s{}\[\]":,0-9A-Za-z_.\-]*$/.test(text) || bytes.length === 0) {
    if (bytes.length === 0) throw new UsageError(`${file} is empty`);
    return [{ sealed: new Uint8Array(bytes) }];
  }
  const out: { line?: number; tid?: string; sealed: Uint8Array }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const l = raw.trim();
    if (!l) return;
    try {
      if (l.startsWith('{')) {
        const j = JSON.parse(l) as { tid?: string; sealed: string };
        out.push({ line: i + 1, tid: j.tid, sealed: fromHex(j.sealed) });
      } else {
        out.push({ line: i + 1, sealed: fromHex(l) });
      }
    } catch (e) {
      throw new UsageError(`${file} line ${i + 1}: not a sealed ticket (${(e as Error).message})`);
    }
  });
  return out;
}

export function registerLoad(program: Command): void {
  addCardOptions(
    program
      .command('load [file]')
      .description('load first ciphertexts sealed earlier (`eticket issue --out`, a seller\'s booking) onto the card they were sealed to; --pending: every ticket the store holds for this card')
      .option('--pending', 'load the sealed tickets waiting for this card in the working directory\'s store')
      .addHelpText(
        'after',
        '\nNo passphrase needed to load a FILE: an issuing terminal holds no secret. --pending must learn which card\nthis is, which a locked card tells only the working directory\'s authority (EXTERNAL AUTHENTICATE): it needs\nthe passphrase. In a working directory, the store learns which tickets the card took.\n\nExample:\n  $ eticket issue --credentials card.json --from tickets.csv --out sealed.jsonl\n  $ eticket load sealed.jsonl --card card.img\n  $ eticket load --pending --card card.img',
      ),
  ).action(async (file: string | undefined, opts: CardOptions & { pending?: boolean }, cmd: Command) => {
    if (Boolean(file) === Boolean(opts.pending)) throw new UsageError('give a FILE of sealed tickets, or --pending (not both)');
    const blobs = file ? readSealed(file) : [];
    const json = globals(cmd).json;
    const [{ IssuingTerminal }, { openBackoffice }] = await Promise.all([import('../issuing.js'), import('./store.js')]);
    const card = await openCard(cmd, opts);
    let office: OpenedBackoffice | undefined;
    try {
      // The store is optional here (a terminal far from the back office loads a file); used when it is there.
      const w = opts.pending || existsSync(join(workDirPath(cmd), 'eticket.json')) ? await workDir(cmd) : undefined;
      // LOAD needs no secret; only --pending must learn which card this is, which a locked card tells an authorised issuer.
      const issuing = new IssuingTerminal(card.session, w ? { authorize: w.issuerAuthorizer(() => passphrase()) } : {});
      await requirePersonalised(issuing);
      if (w) office = await openBackoffice(cmd, w, undefined);
      const serialHex = opts.pending ? (await issuing.cardInfo()).serialHex : undefined;
      if (opts.pending) for (const t of await office!.store.pendingFor(serialHex!)) blobs.push({ tid: t.tid, sealed: t.sealed });
      const results: IssueResult[] = [];
      for (const b of blobs) {
        const r = await loadOne(issuing, b.sealed, b.tid, b.line);
        if (office && r.tid && (r.status === 'loaded' || r.status === 'already_on_card')) await office.bo.markLoaded(r.tid, r.sequenceNumber);
        results.push(r);
        if (json) console.log(JSON.stringify(r));
        else console.log(resultLine(r));
      }
      if (!blobs.length && !json) console.log(serialHex ? `no tickets waiting for card ${serialHex}` : 'no tickets to load');
      finish(cmd, results, blobs.length > 1 || Boolean(opts.pending));
    } finally {
      await card.close().catch(() => undefined);
      await office?.close().catch(() => undefined);
    }
  });
}
