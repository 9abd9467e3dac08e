// APDU dumps in apdu4j's text format (`# ATR:`, `# PROTOCOL:`, hex command, `# 12ms`, hex response), and a
// transport that replays one: a session recorded against a real card becomes a test fixture without the card.

import { InvalidInputError, TransportError } from '../../sdk/errors.js';
import type { Transport, TransportInfo } from './transport.js';

/** One command and response of a dump, with its line number and timing. */
export interface DumpExchange {
  kind: 'exchange';
  /** 1-based position among the exchanges of the dump (what error messages and traces call "exchange N"). */
  index: number;
  command: Uint8Array;
  response: Uint8Array;
  /** Round-trip time from the `# <n>ms` comment, when recorded. */
  ms?: number;
  /**
   * Bytes of the command blanked by the recorder (`# REDACTED <n> bytes at offset <o>: ...`, key material):
   * replay matches any command equal to the recorded one outside this range.
   */
  redacted?: { offset: number; length: number };
  /** 1-based line of the command in the dump text. */
  line: number;
}

/** A warm reset between exchanges: recorded as a further `# ATR:` line. */
export interface DumpReset {
  kind: 'reset';
  atr: Uint8Array;
  line: number;
}

/** An entry of a dump: an exchange or a reset. */
export type DumpEntry = DumpExchange | DumpReset;

/** A parsed apdu4j-style dump: reader, ATR, protocol and entries. */
export interface ApduDump {
  atr?: Uint8Array;
  /** As written after `# PROTOCOL:`, e.g. "T=1". */
  protocol?: string;
  /** From `# Using <reader>`, when present. */
  reader?: string;
  entries: DumpEntry[];
  exchanges: DumpExchange[];
}

const HEX_LINE = /^[0-9a-fA-F\s]+$/;

function fromHex(text: string, line: number): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0) throw new InvalidInputError(`APDU dump line ${line}: odd number of hex digits`);
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

/** Upper-case hex as dumps write it. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').toUpperCase();
}

/**
 * Parse an apdu4j-style dump. Hex lines alternate command, response; `# <n>ms` between them is the
 * exchange's timing; the first `# ATR:` is the card's, any later one marks a reset. Other comments are ignored.
 */
export function parseDump(text: string): ApduDump {
  const dump: ApduDump = { entries: [], exchanges: [] };
  let pending: { command: Uint8Array; line: number; ms?: number; redacted?: { offset: number; length: number } } | undefined;
  let redacted: { offset: number; length: number; line: number } | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const comment = line.slice(1).trim();
      let m: RegExpExecArray | null;
      if ((m = /^ATR:\s*([0-9a-fA-F\s]*)$/.exec(comment))) {
        if (pending) throw new InvalidInputError(`APDU dump line ${lineNo}: ATR inside an exchange (command on line ${pending.line} has no response)`);
        const atr = fromHex(m[1]!, lineNo);
        if (dump.atr === undefined) dump.atr = atr;
        else dump.entries.push({ kind: 'reset', atr, line: lineNo });
      } else if ((m = /^PROTOCOL:\s*(\S+)/.exec(comment))) {
        dump.protocol ??= m[1]!;
      } else if ((m = /^Using\s+(.+)$/.exec(comment))) {
        dump.reader ??= m[1]!.trim();
      } else if ((m = /^(\d+(?:\.\d+)?)\s*ms$/.exec(comment)) && pending) {
        pending.ms = Number(m[1]);
      } else if ((m = /^REDACTED (\d+) bytes at offset (\d+):/.exec(comment)) && !pending) {
        redacted = { length: Number(m[1]), offset: Number(m[2]), line: lineNo };
      }
      continue;
    }
    if (!HEX_LINE.test(line)) throw new InvalidInputError(`APDU dump line ${lineNo}: not hex and not a # comment: "${line.slice(0, 40)}"`);
    const bytes = fromHex(line, lineNo);
    if (!pending) {
      pending = { command: bytes, line: lineNo };
      if (redacted) {
        if (redacted.offset + redacted.length > bytes.length) {
          throw new InvalidInputError(`APDU dump line ${redacted.line}: redaction past the end of the ${bytes.length}-byte command below it`);
        }
        pending.redacted = { offset: redacted.offset, length: redacted.length };
        redacted = undefined;
      }
    } else {
      const exchange: DumpExchange = {
        kind: 'exchange',
        index: dump.exchanges.length + 1,
        command: pending.command,
        response: bytes,
        line: pending.line,
        ...(pending.ms !== undefined ? { ms: pending.ms } : {}),
        ...(pending.redacted ? { redacted: pending.redacted } : {}),
      };
      dump.entries.push(exchange);
      dump.exchanges.push(exchange);
      pending = undefined;
    }
  }
  if (pending) throw new InvalidInputError(`APDU dump line ${pending.line}: command without a response`);
  return dump;
}

/** The replayed session went somewhere the recording did not: carries the exchange number and both commands. */
export class ReplayMismatchError extends TransportError {
  constructor(
    message: string,
    /** 1-based exchange number in the dump (the next one expected); dump length + 1 when past its end. */
    readonly exchange: number,
    readonly expected?: Uint8Array,
    readonly actual?: Uint8Array,
  ) {
    super(message, 'replay');
  }
}

/** How strictly a ReplayTransport matches the commands it is sent. */
export interface ReplayOptions {
  /** Reader name to report; default the dump's `# Using` line, else "replay". */
  reader?: string;
  /** Default: true (a recorded card could take extended APDUs or it could not; replay does not limit). */
  extendedLength?: boolean;
}

/** Answers each recorded command with its recorded response, in order; anything else is a ReplayMismatchError. */
export class ReplayTransport implements Transport {
  readonly info: TransportInfo;
  readonly dump: ApduDump;
  private next = 0;
  private connected = false;

  constructor(dump: ApduDump | string, options: ReplayOptions = {}) {
    this.dump = typeof dump === 'string' ? parseDump(dump) : dump;
    this.info = {
      reader: options.reader ?? this.dump.reader ?? 'replay',
      extendedLength: options.extendedLength ?? true,
      maxResponse: 65538,
    };
  }

  /** Entries not replayed yet. */
  get remaining(): number {
    return this.dump.entries.length - this.next;
  }

  /** Throw unless every recorded exchange was replayed (a session that stopped early is a difference too). */
  assertComplete(): void {
    const entry = this.dump.entries[this.next];
    if (!entry) return;
    const n = entry.kind === 'exchange' ? entry.index : this.nextExchangeNumber();
    throw new ReplayMismatchError(
      `replay ended early: ${this.remaining} recorded entr${this.remaining === 1 ? 'y' : 'ies'} not replayed, from exchange ${n} (dump line ${entry.line})`,
      n,
      entry.kind === 'exchange' ? entry.command : undefined,
    );
  }

  async connect(): Promise<Uint8Array> {
    this.connected = true;
    return (this.dump.atr ?? new Uint8Array(0)).slice();
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    this.requireConnected();
    const entry = this.dump.entries[this.next];
    const n = this.nextExchangeNumber();
    if (!entry) {
      throw new ReplayMismatchError(
        `replay exchange ${n}: the dump has only ${this.dump.exchanges.length} exchange(s); got ${toHex(command)}`,
        n,
        undefined,
        command,
      );
    }
    if (entry.kind === 'reset') {
      throw new ReplayMismatchError(`replay exchange ${n}: the recording reset the card here (dump line ${entry.line}); got command ${toHex(command)}`, n, undefined, command);
    }
    if (!equal(entry.command, command, entry.redacted)) {
      throw new ReplayMismatchError(
        `replay exchange ${n} (dump line ${entry.line}): expected command ${toHex(entry.command)}, got ${toHex(command)}`,
        n,
        entry.command,
        command,
      );
    }
    this.next++;
    return entry.response.slice();
  }

  async reset(): Promise<Uint8Array> {
    this.requireConnected();
    const entry = this.dump.entries[this.next];
    if (!entry || entry.kind !== 'reset') {
      const n = this.nextExchangeNumber();
      throw new ReplayMismatchError(
        entry ? `replay exchange ${n} (dump line ${entry.line}): expected command ${toHex(entry.command)}, got a reset` : `replay: reset after the end of the dump`,
        n,
        entry?.kind === 'exchange' ? entry.command : undefined,
      );
    }
    this.next++;
    return entry.atr.slice();
  }

  async disconnect(): Promise<void> {
    this.connected = false;
  }

  private nextExchangeNumber(): number {
    return this.dump.entries.slice(0, this.next).filter((e) => e.kind === 'exchange').length + 1;
  }

  private requireConnected(): void {
    if (!this.connected) throw new TransportError('replay transport not connected: call connect() first', this.info.reader);
  }
}

/** Equal bytes, except inside a redacted range of the recorded command (whatever the key was). */
function equal(a: Uint8Array, b: Uint8Array, redacted?: { offset: number; length: number }): boolean {
  const blank = (i: number): boolean => redacted !== undefined && i >= redacted.offset && i < redacted.offset + redacted.length;
  return a.length === b.length && a.every((x, i) => blank(i) || x === b[i]);
}
