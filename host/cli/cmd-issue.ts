// `eticket issue` (ticket server → authentication server → issuing terminal, one ticket or a batch) and
// `eticket load` (first ciphertexts sealed earlier with `issue --out`, loaded onto a card later).

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { fromHex, hex } from '../../sdk/bytes.js';
import { CardStatusError, InvalidInputError } from '../../sdk/errors.js';
import type { TicketRequest } from '../../sdk/roles/ticket-server.js';
import type { CardCredentials } from '../../sdk/roles/trust.js';
import { SW } from '../../sdk/spec.js';
import type { FciInfo, IssuingTerminal } from '../issuing.js';
import { batchFormat, parseBatch, toRequest, type BatchItem } from './batch.js';
import { addCardOptions, cardHint, emit, EXIT, ExitStatus, globals, openCard, passphrase, UsageError, workDir, workDirPath, type CardHandle, type CardOptions } from './context.js';
import type { Backoffice } from '../../backoffice/service.js';
import type { OpenedBackoffice } from './store.js';

export type IssueStatus = 'loaded' | 'already_on_card' | 'sealed' | 'failed';

export interface IssueResult {
  line?: number;
  status: IssueStatus;
  tid?: string;
  sequenceNumber?: number;
  error?: string;
  sw?: string;
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
  ['--max-entries <n>', 'entries allowed (default 1)'],
];
export const TICKET_FIELDS = ['tid', 'serviceDate', 'train', 'origin', 'destination', 'departure', 'coach', 'seat', 'travelClass', 'fare', 'currency', 'passenger', 'validFrom', 'validUntil', 'kind', 'flags', 'maxEntries'];

export function addTicketFlags(cmd: Command, hidden: string[] = []): Command {
  for (const [flags, desc] of TICKET_FLAGS) {
    if (hidden.some((h) => flags.startsWith(h))) continue;
    cmd.option(flags, desc);
  }
  return cmd;
}

export function ticketFlagValues(opts: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(TICKET_FIELDS.filter((f) => opts[f] !== undefined).map((f) => [f, opts[f]]));
}

/** Progress on stderr when it is a terminal: a bar redrawn in place, cleared before any other output. */
class Progress {
  private readonly on: boolean;
  private done = 0;
  constructor(private readonly total: number, enabled: boolean) {
    this.on = enabled && process.stderr.isTTY === true && total > 1;
  }
  print(line: string): void {
    if (this.on) process.stderr.write('\r\x1b[K');
    console.log(line);
    this.draw();
  }
  tick(): void {
    this.done++;
    this.draw();
  }
  private draw(): void {
    if (!this.on) return;
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

/** Load one first ciphertext; ALREADY_EXISTS is a success for an idempotent re-run. */
async function loadOne(issuing: IssuingTerminal, sealed: Uint8Array, tid: string | undefined, line?: number): Promise<IssueResult> {
  const { isDuplicate } = await import('../issuing.js');
  try {
    const r = await issuing.load(sealed);
    return { line, status: 'loaded', tid: r.tid, sequenceNumber: r.sequenceNumber };
  } catch (e) {
    if (isDuplicate(e)) return { line, status: 'already_on_card', tid };
    return failure(e, line, tid);
  }
}

interface IssueRun {
  bo: Backoffice;
  creds: CardCredentials;
  issuing?: IssuingTerminal;
  out?: string;
  sellerId?: string;
}

/** What makes a batch line the same line on a re-run: card, line number and content (as the old ledger did). */
export function lineFingerprint(serial: string, line: number, request: TicketRequest): string {
  return createHash('sha256').update(JSON.stringify([serial, line, request])).digest('hex').slice(0, 32);
}

/**
 * One request through the back office (TID, TF_V, sealing and the bill, recorded in the store before
 * anything reaches the card), then LOAD, then "loaded" in the store. A re-run, also after a crash or kill -9,
 * finds the line's ticket in the store and loads the same sealed ticket: nothing is issued twice.
 */
async function issueOne(run: IssueRun, request: TicketRequest, line?: number): Promise<IssueResult & { sealed?: Uint8Array }> {
  const serial = hex(run.creds.serial);
  const requestKey = line !== undefined && request.tid === undefined ? lineFingerprint(serial, line, request) : undefined;
  let tid = request.tid;
  let sealed: Uint8Array;
  const { NotFoundError, StoreConflictError } = await import('../../backoffice/store/store.js');
  try {
    const o = await run.bo.issue({ request, card: run.creds, requestKey, sellerId: run.sellerId });
    tid = o.ticket.tid;
    sealed = o.ticket.sealed;
  } catch (e) {
    if (e instanceof StoreConflictError || e instanceof NotFoundError) return { line, tid, status: 'failed', error: e.message };
    return failure(e, line, tid);
  }
  if (!run.issuing) return { line, status: 'sealed', tid, sealed };
  const r = await loadOne(run.issuing, sealed, tid, line);
  if (r.status === 'loaded' || r.status === 'already_on_card') await run.bo.markLoaded(tid!, r.sequenceNumber);
  else if (r.sw === SW.NOT_ENOUGH_MEMORY.toString(16).toUpperCase() && tid) await run.bo.releaseUnloaded(tid);
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

function finish(cmd: Command, results: IssueResult[], batch: boolean): void {
  const failed = results.filter((r) => r.status === 'failed').length;
  const summary = {
    summary: true,
    total: results.length,
    loaded: results.filter((r) => r.status === 'loaded').length,
    alreadyOnCard: results.filter((r) => r.status === 'already_on_card').length,
    sealed: results.filter((r) => r.status === 'sealed').length,
    failed,
  };
  if (batch) {
    emit(cmd, summary, `${summary.total} ticket(s): ${summary.loaded} loaded, ${summary.alreadyOnCard} already on card, ${summary.sealed} sealed, ${failed} failed`);
    if (failed) throw new ExitStatus(EXIT.PARTIAL);
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
    .option('--seller <id>', 'record the tickets and bills as sold by this registered seller (default: the operator)');
  addCardOptions(issue);
  addTicketFlags(issue);
  issue.addHelpText(
    'after',
    `
Batch columns / JSON keys: ${TICKET_FIELDS.join(', ')}. serviceDate is YYYY-MM-DD, times ISO 8601
or epoch seconds. A bad line is reported with its number and the rest go on (exit status 4). Re-running
a batch onto the same card is safe: tickets already there are reported "already on card".

Examples:
  $ eticket issue --card card.img --service-date 2026-11-22 --train G1 --origin BJS --destination SHH --seat 12A
  $ eticket issue --card card.img --from tickets.csv --json
  $ eticket issue --card card.img --from tickets.csv --out sealed.jsonl   # seal now, load later`,
  );
  issue.action(async (opts: CardOptions & Record<string, unknown> & { from?: string; format?: string; out?: string; credentials?: string; seller?: string }, cmd: Command) => {
    const flags = ticketFlagValues(opts);
    if (opts.from && Object.keys(flags).length) throw new UsageError(`give ticket fields as flags or in --from ${opts.from}, not both`);
    if (!opts.from && !flags.serviceDate) throw new UsageError('nothing to issue: give --from <file>, or at least --service-date for one ticket');
    if (opts.credentials && !opts.out) throw new UsageError('--credentials is for sealing to a file: add --out <file>');
    if (opts.credentials && (opts.card || opts.reader)) throw new UsageError('give --credentials or a card (--card / --reader), not both');

    let items: BatchItem[];
    if (opts.from) {
      if (opts.from !== '-' && !existsSync(opts.from)) throw new UsageError(`batch file ${opts.from} does not exist`);
      const text = readFileSync(opts.from === '-' ? 0 : opts.from, 'utf8');
      items = parseBatch(text, batchFormat(opts.from === '-' ? 'stdin' : opts.from, opts.format ?? (opts.from === '-' ? 'jsonl' : undefined)));
    } else {
      items = [{ line: undefined as unknown as number, request: toRequest(flags) }];
    }
    const batch = Boolean(opts.from);
    const w = await workDir(cmd);
    // Default validity starts at the service day's midnight in the operator's time zone.
    const [{ timeZoneOf, withLocalValidity }, { parseServiceDate }] = await Promise.all([import('./timezone.js'), import('../../sdk/fields.js')]);
    const tz = timeZoneOf(cmd, w.config.timeZone);
    items = items.map((it) => {
      if ('error' in it) return it;
      try {
        return { ...it, request: withLocalValidity(it.request, tz, parseServiceDate) };
      } catch (e) {
        if (e instanceof InvalidInputError) return { line: it.line, error: e.message };
        throw e;
      }
    });
    const pass = await passphrase();
    w.loadAuthoritySigner(pass); // a wrong passphrase stops here, before the store or the card is touched
    if (opts.out?.endsWith('.bin') && items.length !== 1) throw new UsageError('a .bin output holds one ticket; use a .jsonl name for a batch');

    const [{ IssuingTerminal }, { openBackoffice }] = await Promise.all([import('../issuing.js'), import('./store.js')]);
    let card: CardHandle | undefined;
    let office: OpenedBackoffice | undefined;
    try {
      let creds: CardCredentials;
      let issuing: IssuingTerminal | undefined;
      if (opts.credentials) {
        creds = readCredentials(opts.credentials);
      } else {
        card = await openCard(cmd, opts);
        issuing = new IssuingTerminal(card.session, { authorize: w.issuerAuthorizer(() => pass) });
        await requirePersonalised(issuing);
        creds = await issuing.credentials();
      }
      office = await openBackoffice(cmd, w, pass);
      if (opts.seller) {
        const seller = await office.store.client(opts.seller);
        if (!seller || seller.role !== 'seller') throw new UsageError(`no seller ${opts.seller} is registered: \`eticket seller add ${opts.seller}\``);
      }
      const run: IssueRun = { bo: office.bo, creds, issuing: opts.out ? undefined : issuing, out: opts.out, sellerId: opts.seller };
      if (opts.out && !opts.out.endsWith('.bin')) writeFileSync(opts.out, '');
      const json = globals(cmd).json;
      const progress = new Progress(items.length, !json);
      const results: IssueResult[] = [];
      for (const it of items) {
        const line = batch ? it.line : undefined;
        const r = 'error' in it ? { line, status: 'failed' as const, error: it.error } : await issueOne(run, it.request, line);
        if (r.sealed && opts.out) {
          if (opts.out.endsWith('.bin')) writeFileSync(opts.out, r.sealed);
          else appendFileSync(opts.out, JSON.stringify({ line, tid: r.tid, card: hex(creds.serial), sealed: hex(r.sealed) }) + '\n');
        }
        const { sealed: _s, ...result } = r as IssueResult & { sealed?: Uint8Array };
        results.push(result);
        if (json) console.log(JSON.stringify(result));
        else if (batch || result.status !== 'failed') progress.print(resultLine(result));
        else console.error(`eticket: ${result.error}`);
        progress.tick();
      }
      progress.end();
      finish(cmd, results, batch);
    } finally {
      await card?.close().catch(() => undefined);
      await office?.close().catch(() => undefined);
    }
  });
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
