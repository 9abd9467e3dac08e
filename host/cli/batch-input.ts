// Batch input read as a stream (`eticket issue --from`): a file or stdin, CSV or JSON Lines (told by --format, the
// file name, or the first line), records of bounded length, so a huge field is one failed line, never the whole file in memory.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { InvalidInputError } from '../../sdk/errors.js';
import { batchFormat, parseCsvBatch, parseJsonLinesBatch, type BatchItem } from './batch.js';
import { parseCsv } from './csv.js';
import { UsageError } from './context.js';

/** The longest record (a CSV row with its quoted line breaks, or a JSON line) read: a ticket row needs well under 2 KiB. */
export const MAX_RECORD_CHARS = 64 * 1024;

/**
 * What a row is known by across re-runs, onto this card or another: the batch's name (`--batch`, else the file's
 * name), its line number and its content (its tid, if it has one, included). Fixing one line changes that line's key only.
 */
export function rowKey(batch: string, line: number, request: object): string {
  return createHash('sha256').update(JSON.stringify(['eticket-batch-row/1', batch, line, request])).digest('hex').slice(0, 32);
}

type Physical = { line: number; text: string } | { line: number; overlong: true };

/** Physical lines of a stream, none held beyond MAX_RECORD_CHARS: the rest of an overlong line is skipped unread. */
async function* physicalLines(source: AsyncIterable<Buffer | string>): AsyncGenerator<Physical> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 1;
  let skipping = false;
  const take = function* (chunk: string): Generator<Physical> {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', from);
      if (nl < 0) break;
      if (skipping) skipping = false;
      else yield { line, text: pending + chunk.slice(from, nl).replace(/\r$/, '') };
      pending = '';
      line++;
      from = nl + 1;
    }
    if (!skipping) {
      pending += chunk.slice(from);
      if (pending.length > MAX_RECORD_CHARS) {
        yield { line, overlong: true };
        pending = '';
        skipping = true;
      }
    }
  };
  for await (const chunk of source) yield* take(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  yield* take(decoder.end());
  if (!skipping && pending.length > 0) yield { line, text: pending.replace(/\r$/, '') };
}

const overlongError = (line: number) => `line longer than ${MAX_RECORD_CHARS} characters (a ticket row is far shorter): skipped`;

/** Records of the chosen format: CSV rows may span lines inside quotes, still bounded by MAX_RECORD_CHARS. */
async function* records(lines: AsyncGenerator<Physical>, format: 'csv' | 'jsonl'): AsyncGenerator<{ line: number; text: string } | { line: number; error: string }> {
  if (format === 'jsonl') {
    for await (const p of lines) yield 'overlong' in p ? { line: p.line, error: overlongError(p.line) } : p;
    return;
  }
  let open: { line: number; text: string; quotes: number } | undefined;
  for await (const p of lines) {
    if ('overlong' in p) {
      yield { line: open?.line ?? p.line, error: overlongError(p.line) };
      open = undefined;
      continue;
    }
    const quotes = (p.text.match(/"/g) ?? []).length;
    open = open ? { line: open.line, text: `${open.text}\n${p.text}`, quotes: open.quotes + quotes } : { line: p.line, text: p.text, quotes };
    if (open.text.length > MAX_RECORD_CHARS) {
      yield { line: open.line, error: overlongError(open.line) };
      open = undefined;
      continue;
    }
    if (open.quotes % 2 === 0) {
      yield { line: open.line, text: open.text };
      open = undefined;
    }
  }
  if (open) yield { line: open.line, text: open.text }; // an unclosed quote: the CSV parser names it
}

/** Where the rows come from: a readable file, or stdin for "-"; a directory, a missing file: UsageError. */
export function batchSource(from: string): AsyncIterable<Buffer | string> {
  if (from === '-') return process.stdin;
  if (!existsSync(from)) throw new UsageError(`batch file ${from} does not exist`);
  if (statSync(from).isDirectory()) throw new UsageError(`${from} is a directory: give a CSV or JSON Lines file (or - for stdin)`);
  return createReadStream(from, { highWaterMark: 64 * 1024 });
}

/**
 * The batch's rows, one at a time. The format comes from --format, else the file name, else the first non-blank
 * line (`{` starts JSON Lines, anything else is CSV), so `--from -` takes either. `baseDir`: where holderPhoto file
 * names are relative to (the batch file's directory).
 */
export async function* batchItems(from: string, format?: string, baseDir = '.'): AsyncGenerator<BatchItem> {
  let chosen: 'csv' | 'jsonl' | undefined;
  if (format !== undefined) chosen = batchFormat(from, format);
  else if (from !== '-' && /\.(csv|jsonl|ndjson|json)$/i.test(from)) chosen = batchFormat(from);
  const lines = physicalLines(batchSource(from));
  // Peek at the first non-blank line when the format is still open.
  const head: Physical[] = [];
  if (!chosen) {
    // next(), not for-await: leaving a for-await loop would close the line stream.
    for (let r = await lines.next(); !r.done; r = await lines.next()) {
      const p = r.value;
      head.push(p);
      if ('overlong' in p || p.text.trim()) {
        chosen = 'text' in p && p.text.replace(/^\ufeff/, '').trim().startsWith('{') ? 'jsonl' : 'csv';
        break;
      }
    }
    chosen ??= 'csv';
  }
  async function* replay(): AsyncGenerator<Physical> {
    yield* head;
    yield* lines;
  }
  let columns: string | undefined;
  for await (const r of records(replay(), chosen)) {
    if ('error' in r) {
      if (chosen === 'csv' && columns === undefined) throw new InvalidInputError(`CSV header (line ${r.line}): ${r.error}`);
      yield r;
      continue;
    }
    if (chosen === 'jsonl') {
      for (const it of parseJsonLinesBatch(r.text, baseDir)) yield { ...it, line: r.line };
      continue;
    }
    if (!r.text.trim()) continue;
    if (columns === undefined) {
      // The header alone: parseCsvBatch checks its columns and yields nothing.
      columns = r.text;
      parseCsvBatch(columns);
      continue;
    }
    const parsed = parseCsv(r.text);
    if (parsed.length === 0) continue;
    for (const it of parseCsvBatch(`${columns}\n${r.text}`, baseDir)) yield { ...it, line: r.line };
  }
}
