// What every CLI command shares: the working directory, the card (an image through the embedded
// emulator, or a PC/SC reader), optional recording to a dump, the passphrase, output and exit codes.
// Loaded by `eticket --help` too: the card, transport and key modules are imported only when a helper needs them.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { EticketCard } from '../../card/applet.js';
import { LockHeldError } from '../../sdk/file-lock.js';
import { CardStatusError, CryptoError, EticketError, InvalidInputError, ReaderNotFoundError, TicketNotFoundError, TransportError, TransportUnavailableError } from '../../sdk/errors.js';
import { SW } from '../../sdk/spec.js';
import type { CardSession } from '../session.js';
import type { Transport } from '../transport/transport.js';
import type { WorkDir } from './workdir.js';

/** Documented, stable exit codes (docs/cli.md "Exit codes"). */
export const EXIT = {
  OK: 0,
  /** Bad command line or input file, missing working directory or card image, no passphrase; refused by the store (sold out, TID taken). */
  USAGE: 1,
  /** The card answered with a refusal status word (full, duplicate, ...), or its view says no such ticket (not found, void). */
  CARD_REFUSED: 2,
  /** Reader, PC/SC service, vpcd, a card image that cannot be read, or a database that cannot be reached. */
  TRANSPORT: 3,
  /** A batch ran, but some of its tickets failed (each failure is reported). */
  PARTIAL: 4,
  /** Wrong passphrase, damaged key file, or a card or ticket failing a signature check. */
  CRYPTO: 5,
  /** A gate rejected the card (`eticket gate --once`, `eticket use`). */
  REJECTED: 6,
  /** Another process holds the card image or the embedded store; nothing was read or written. */
  BUSY: 7,
  /** `eticket inspect`: the back office refused the holder data (not permitted, TOTP, reads used up, expired). */
  HOLDER_REFUSED: 8,
  /** A bug: please report it with the output of --debug. */
  INTERNAL: 70,
  /**
   * The reader of the output went away (`eticket issue … | head -1`: EPIPE): the command stops there, as a shell's tool
   * killed by SIGPIPE (128 + 13). What it had done is kept (a batch: re-run it; nothing is issued twice).
   */
  OUTPUT_CLOSED: 141,
} as const;

/** A problem with how the command was called; exit 1. */
export class UsageError extends InvalidInputError {}

/** The card image exists but cannot be used; exit 3 like an unreadable card in a reader. */
export class CardImageError extends TransportError {}

/** Ends a command with an exit code after it has reported its own results (batches, gate rejects). */
export class ExitStatus extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export interface GlobalOptions {
  dir?: string;
  json?: boolean;
  debug?: boolean;
  record?: string;
}

export interface CardOptions {
  card?: string;
  reader?: string;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Working directory: --dir, else $ETICKET_HOME, else the current directory. */
export async function workDir(cmd: Command): Promise<WorkDir> {
  const { WorkDir } = await import('./workdir.js');
  return WorkDir.open(workDirPath(cmd));
}

export function workDirPath(cmd: Command): string {
  return resolve(globals(cmd).dir ?? process.env.ETICKET_HOME ?? '.');
}

export function addCardOptions(cmd: Command): Command {
  return cmd.option('--card <image>', 'card image file, driven by the embedded emulator').option('--reader <name>', 'PC/SC reader (exact name or a unique part of it)');
}

export interface CardHandle {
  session: CardSession;
  transport: Transport;
  /** "image card.img" or "reader Virtual PCD 00 00". */
  label: string;
  /**
   * An image card's group commit (EticketCard.deferBarriers): its commands' barrier is flush()'s, which the
   * command calls before it reports them or records them in the store. Absent for a card in a reader.
   */
  groupCommit?: { defer(on: boolean): void; flush(): void };
  close(): Promise<void>;
}

/** The image's absolute path; a usage error when there is no such file. */
export function requireImage(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new UsageError(`card image ${path} does not exist: create one with \`eticket card create ${path}\``);
  return p;
}

/**
 * Open an image as an emulated card, held exclusively by this process until it exits (a second process
 * gets LockHeldError, exit 7); missing → usage error, corrupt → CardImageError.
 */
export async function openImage(path: string): Promise<EticketCard> {
  const p = requireImage(path);
  const [{ EticketCard }, { FileBackend, NvmCorruptError }] = await Promise.all([import('../../card/applet.js'), import('../../card/nvm.js')]);
  const backend = new FileBackend(p, true, { lock: true });
  try {
    const card = EticketCard.open(backend);
    // On a normal exit the journal is emptied: the image file alone is then the card (docs/cli.md), and a
    // journal is left beside it only by a kill or a power cut, for the next open to replay.
    process.once('exit', () => {
      try {
        card.checkpoint();
      } catch {
        // nothing more can be done at exit; the journal stays and the next open replays it
      }
    });
    return card;
  } catch (e) {
    backend.close();
    if (e instanceof NvmCorruptError) throw new CardImageError(`card image ${path} cannot be used (${e.message}): restore it from a copy or create a new card`, path, { cause: e });
    throw e;
  }
}

/** The transport for --card or --reader, wrapped for --record; the caller connects through a CardSession. */
export async function openTransport(cmd: Command, options: CardOptions): Promise<{ transport: Transport; label: string; image?: EticketCard }> {
  if (options.card && options.reader) throw new UsageError('give either --card <image> or --reader <name>, not both');
  let transport: Transport;
  let label: string;
  let image: EticketCard | undefined;
  if (options.card) {
    const { EmulatorTransport } = await import('../transport/emulator.js');
    image = await openImage(options.card);
    transport = new EmulatorTransport(image, `emulator:${options.card}`);
    label = `image ${options.card}`;
  } else if (options.reader) {
    const { PcscTransport } = await import('../transport/pcsc.js');
    transport = new PcscTransport({ reader: options.reader });
    label = `reader ${options.reader}`;
  } else {
    throw new UsageError('which card? give --card <image> (embedded emulator) or --reader <name> (PC/SC; see `eticket readers`)');
  }
  const record = globals(cmd).record;
  if (record) {
    const { dumpFileWriter, RecordingTransport } = await import('../transport/recording.js');
    // 0600, and PUT KEY data redacted: a personalisation dump would otherwise carry the card's keys.
    transport = new RecordingTransport(transport, { write: dumpFileWriter(record) });
  }
  return { transport, label, image };
}

export async function openCard(cmd: Command, options: CardOptions): Promise<CardHandle> {
  const { transport, label, image } = await openTransport(cmd, options);
  const { CardSession } = await import('../session.js');
  const session = new CardSession(transport);
  try {
    await session.connect();
  } catch (e) {
    // A PC/SC context left open would keep the process alive after the error is reported.
    await transport.disconnect().catch(() => undefined);
    throw e;
  }
  const groupCommit = image && { defer: (on: boolean) => image.deferBarriers(on), flush: () => image.flush() };
  return { session, transport, label, ...(groupCommit ? { groupCommit } : {}), close: () => session.close() };
}

/** Run `fn` with the card open, closing it whatever happens. */
export async function withCard<T>(cmd: Command, options: CardOptions, fn: (card: CardHandle) => Promise<T>): Promise<T> {
  const card = await openCard(cmd, options);
  try {
    return await fn(card);
  } finally {
    await card.close().catch(() => undefined);
  }
}

/**
 * The passphrase: $ETICKET_PASSPHRASE, else a no-echo prompt on a terminal; never a command-line argument.
 * A gate's configuration directory has its own: `{ gate: true }` reads $ETICKET_GATE_PASSPHRASE.
 */
export async function passphrase(options: { confirm?: boolean; gate?: boolean } = {}): Promise<string> {
  const name = options.gate ? 'ETICKET_GATE_PASSPHRASE' : 'ETICKET_PASSPHRASE';
  const what = options.gate ? 'gate passphrase' : 'passphrase';
  const env = process.env[name];
  if (env) return env;
  if (!process.stdin.isTTY) throw new UsageError(`no ${what}: set ${name} (stdin is not a terminal, so there is no prompt)`);
  const first = await prompt(options.gate ? 'Gate passphrase: ' : 'Passphrase: ');
  if (!first) throw new UsageError('an empty passphrase cannot protect the keys');
  if (options.confirm && (await prompt(options.gate ? 'Repeat gate passphrase: ' : 'Repeat passphrase: ')) !== first) throw new UsageError('the passphrases differ');
  return first;
}

function prompt(question: string): Promise<string> {
  return new Promise((resolvePrompt, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let text = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolvePrompt(text);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UsageError('cancelled'));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Print a result: one JSON line under --json, else the text lines. */
export function emit(cmd: Command, json: unknown, text: string | string[]): void {
  if (globals(cmd).json) console.log(JSON.stringify(json));
  else console.log(Array.isArray(text) ? text.join('\n') : text);
}

/**
 * The exit code for an error that ended a command. Async because the store's error classes are loaded only here,
 * and only for an error no SDK class explains: `eticket --help` never loads the back office (test/cli-lazy.test.ts).
 */
export async function exitCodeFor(e: unknown): Promise<number> {
  if (e instanceof ExitStatus) return e.code;
  if (e instanceof LockHeldError) return EXIT.BUSY;
  if (e instanceof CardStatusError || e instanceof TicketNotFoundError) return EXIT.CARD_REFUSED;
  if (e instanceof TransportError) return EXIT.TRANSPORT;
  if (e instanceof CryptoError) return EXIT.CRYPTO;
  if (e instanceof InvalidInputError) return EXIT.USAGE;
  if (e instanceof EticketError) {
    const [{ StoreUnavailableError }, { MigrationError }, { NotFoundError, StoreConflictError }] = await Promise.all([
      import('../../backoffice/store/database.js'),
      import('../../backoffice/store/migrate.js'),
      import('../../backoffice/store/store.js'),
    ]);
    // The store refused on the domain's grounds (sold out, TID taken, unknown service): the input's fault.
    if (e instanceof StoreConflictError || e instanceof NotFoundError || e instanceof MigrationError) return EXIT.USAGE;
    if (e instanceof StoreUnavailableError) return EXIT.TRANSPORT;
    // The back office over HTTP: unreachable or failing (5xx) is like a database that cannot be reached; a refusal is the input's.
    const { BackofficeHttpError, BackofficeUnreachableError } = await import('../backoffice-client.js');
    if (e instanceof BackofficeUnreachableError) return EXIT.TRANSPORT;
    if (e instanceof BackofficeHttpError) return e.status >= 500 ? EXIT.TRANSPORT : e.status === 401 || e.status === 422 ? EXIT.CRYPTO : EXIT.USAGE;
  }
  return EXIT.INTERNAL;
}

/** The one line a person reads: what went wrong and what to do about it. */
export function errorLine(e: unknown): string {
  if (e instanceof CardStatusError) return `${e.message}${cardHint(e) ? `: ${cardHint(e)}` : ''}`;
  if (e instanceof TicketNotFoundError) return `${e.message}${e.status === 'void' ? ': it was deleted (refunded or rebooked)' : ' (`eticket tickets` lists them)'}`;
  if (e instanceof CryptoError && /passphrase/.test(e.message)) return `${e.message}: give the passphrase used at \`eticket init\` (ETICKET_PASSPHRASE or the prompt)`;
  if (e instanceof ReaderNotFoundError) return `${e.message}: list readers with \`eticket readers\``;
  if (e instanceof TransportUnavailableError) return e.message;
  if (e instanceof LockHeldError) {
    if (/(^|\s)serve(\s|$)/.test(e.holder.command ?? '')) return `${e.message}: an embedded store serves one process; use that service's API, stop it, or keep the store on PostgreSQL (--database) to share it`;
    return `${e.message}: nothing was changed; wait for it to finish (--wait <seconds>), or stop it`;
  }
  if (e instanceof EticketError) return e.message;
  const err = e as Error;
  return `internal error: ${err?.message ?? String(e)} (run again with --debug and report the stack trace)`;
}

export function cardHint(e: CardStatusError): string | undefined {
  switch (e.sw) {
    case SW.NOT_ENOUGH_MEMORY:
      return 'the card is full; delete used tickets (`eticket delete`) or use another card';
    case SW.ALREADY_EXISTS:
      return 'the ticket is already on the card';
    case SW.TICKET_NOT_FOR_THIS_CARD:
      return 'the ticket was sealed to another card';
    case SW.TICKET_REPLAYED:
      return 'this ticket was used and deleted on the card before; issue a new one';
    case SW.CONDITIONS_NOT_SATISFIED:
      return 'the card is not in the right state for this (personalised? locked?)';
    case SW.REFERENCED_DATA_NOT_FOUND:
      return 'the card does not know this key: was it personalised from this working directory?';
    case SW.VIEW_MISMATCH:
      return 'the command did not answer the view the card showed: something between terminal and card changed it';
    default:
      return undefined;
  }
}
