// Batch input for `eticket issue`: CSV (header row of TicketRequest field names) or JSON Lines, turned
// into ticket requests one line at a time; a bad line becomes an error with its line number, not an abort.

import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { InvalidInputError } from '../../sdk/errors.js';
import { holderRecord, type HolderRecord } from '../../sdk/holder.js';
import type { TicketRequest } from '../../sdk/roles/ticket-server.js';
import { protocol } from '../../sdk/spec.js';
import { parseCsv } from './csv.js';

/** A batch line: a ticket request, and for a real-name ticket its holder (kept by the back office, never on the card). */
export type BatchItem = { line: number; request: TicketRequest; holder?: HolderRecord } | { line: number; error: string };

/** Fields a request may carry: the TF_A fields the ticket server does not fill in itself, plus optional overrides. */
export const REQUEST_FIELDS = protocol.ticketFace.map((f) => f.name).filter((n) => !['version', 'operator', 'card', 'holderRef', 'holderBinding'].includes(n));

/**
 * Real-name columns: the holder record of the line's ticket. holderPhoto names a JPEG or PNG file (relative to
 * the batch file). Either all of name, document type and number, or none.
 */
export const HOLDER_FIELDS = ['holderName', 'holderDocumentType', 'holderDocumentNumber', 'holderPhoto'];

/** The holder of a line, or undefined when it has no holder columns filled; HolderRecordError names the field. */
export function holderOf(values: Record<string, unknown>, baseDir = '.'): HolderRecord | undefined {
  const given = HOLDER_FIELDS.filter((f) => values[f] !== undefined && values[f] !== null && values[f] !== '');
  if (!given.length) return undefined;
  let photo: Uint8Array | undefined;
  if (values.holderPhoto) {
    const file = String(values.holderPhoto);
    try {
      photo = new Uint8Array(readFileSync(isAbsolute(file) ? file : join(baseDir, file)));
    } catch {
      throw new InvalidInputError(`holderPhoto: cannot read ${file}`);
    }
  }
  return holderRecord({ name: values.holderName, document: { type: values.holderDocumentType, number: values.holderDocumentNumber }, photo });
}
const TEXT = new Set(protocol.ticketFace.filter((f) => f.format === 'text').map((f) => f.name));
const TIMES = new Set(['validFrom', 'validUntil', 'issuedAt']);
const KINDS: Record<string, number> = { rail: 1, metro: 2, bus: 3, event: 4 };
const PRICINGS: Record<string, number> = { fixed: 1, 'per-trip': 2 };

function integer(name: string, v: unknown): number {
  const n = typeof v === 'number' ? v : /^\s*\d+\s*$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidInputError(`${name} must be a whole number, got "${v}"`);
  return n;
}

/** Epoch seconds, or an ISO 8601 date-time ("2026-11-22T08:00:00Z"). */
export function parseTime(name: string, v: unknown): number {
  if (typeof v === 'number' || /^\s*\d+\s*$/.test(String(v))) return integer(name, v);
  const ms = Date.parse(String(v));
  if (!Number.isFinite(ms) || !/^\d{4}-\d{2}-\d{2}/.test(String(v))) throw new InvalidInputError(`${name} must be epoch seconds or an ISO 8601 time, got "${v}"`);
  return Math.floor(ms / 1000);
}

/** Minutes after midnight, or "HH:MM". */
export function parseDeparture(v: unknown): number {
  const m = /^\s*(\d{1,2}):(\d{2})\s*$/.exec(String(v));
  if (m) {
    const n = Number(m[1]) * 60 + Number(m[2]);
    if (Number(m[1]) > 23 || Number(m[2]) > 59) throw new InvalidInputError(`departure "${v}" is not a time of day`);
    return n;
  }
  const n = integer('departure', v);
  if (n >= 24 * 60) throw new InvalidInputError(`departure must be below 1440 minutes, got ${n}`);
  return n;
}

/** One request from loosely typed values (CSV cells, JSON values, command-line flags). Empty values are absent. */
export function toRequest(values: Record<string, unknown>): TicketRequest {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(values)) {
    if (raw === undefined || raw === null || raw === '') continue;
    if (!REQUEST_FIELDS.includes(name)) throw new InvalidInputError(`unknown field "${name}" (fields: ${REQUEST_FIELDS.join(', ')})`);
    if (name === 'serviceDate') out[name] = typeof raw === 'number' ? raw : String(raw);
    else if (TEXT.has(name)) out[name] = String(raw);
    else if (TIMES.has(name)) out[name] = parseTime(name, raw);
    else if (name === 'departure') out[name] = parseDeparture(raw);
    else if (name === 'kind' && typeof raw === 'string' && KINDS[raw.trim().toLowerCase()]) out[name] = KINDS[raw.trim().toLowerCase()];
    else if (name === 'pricing' && typeof raw === 'string' && PRICINGS[raw.trim().toLowerCase()]) out[name] = PRICINGS[raw.trim().toLowerCase()];
    else out[name] = integer(name, raw);
  }
  if (out.serviceDate === undefined) throw new InvalidInputError('serviceDate is required (YYYY-MM-DD)');
  return out as TicketRequest;
}

function item(line: number, values: Record<string, unknown>, baseDir: string): BatchItem {
  try {
    const ticket: Record<string, unknown> = {};
    const holderValues: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(values)) (HOLDER_FIELDS.includes(k) ? holderValues : ticket)[k] = v;
    // JSON Lines may nest it as the API takes it: {"holder": {"name": …, "document": {"type": …, "number": …}, "photo": base64}}
    let holder: HolderRecord | undefined;
    if (ticket.holder !== undefined && ticket.holder !== null) {
      if (Object.keys(holderValues).length) throw new InvalidInputError('give the holder as columns or as a holder object, not both');
      holder = holderRecord(ticket.holder as never);
    } else holder = holderOf(holderValues, baseDir);
    delete ticket.holder;
    const request = toRequest(ticket);
    if (holder && request.passenger !== undefined) throw new InvalidInputError('a real-name line (holder columns) carries no passenger name');
    return { line, request, ...(holder ? { holder } : {}) };
  } catch (e) {
    if (e instanceof InvalidInputError) return { line, error: e.message };
    throw e;
  }
}

/** CSV with a header row naming the fields. An unknown column fails the whole file (every line would fail). */
export function parseCsvBatch(text: string, baseDir = '.'): BatchItem[] {
  const records = parseCsv(text);
  const header = records.shift();
  if (!header) return [];
  if ('error' in header) throw new InvalidInputError(`CSV header (line ${header.line}): ${header.error}`);
  const columns = header.fields.map((c) => c.trim());
  const unknown = columns.filter((c) => !REQUEST_FIELDS.includes(c) && !HOLDER_FIELDS.includes(c));
  if (unknown.length) throw new InvalidInputError(`CSV header names unknown column(s) ${unknown.map((c) => `"${c}"`).join(', ')}; columns are ${[...REQUEST_FIELDS, ...HOLDER_FIELDS].join(', ')}`);
  if (!columns.includes('serviceDate')) throw new InvalidInputError('CSV header lacks the serviceDate column');
  return records.map((r) => {
    if ('error' in r) return r;
    if (r.fields.length !== columns.length) return { line: r.line, error: `${r.fields.length} fields, the header has ${columns.length}` };
    return item(r.line, Object.fromEntries(columns.map((c, i) => [c, r.fields[i]])), baseDir);
  });
}

/** JSON Lines: one object per line; blank lines and lines starting with # are skipped. */
export function parseJsonLinesBatch(text: string, baseDir = '.'): BatchItem[] {
  const out: BatchItem[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim() || raw.trim().startsWith('#')) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      out.push({ line, error: `not JSON: ${(e as Error).message}` });
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) out.push({ line, error: 'not a JSON object' });
    else out.push(item(line, value as Record<string, unknown>, baseDir));
  });
  return out;
}

/** `baseDir`: where holderPhoto file names are relative to (the batch file's directory). */
export function parseBatch(text: string, format: 'csv' | 'jsonl', baseDir = '.'): BatchItem[] {
  return format === 'csv' ? parseCsvBatch(text, baseDir) : parseJsonLinesBatch(text, baseDir);
}

/** Format from --format, else the file name (.csv / .jsonl / .ndjson / .json). */
export function batchFormat(file: string, format?: string): 'csv' | 'jsonl' {
  const f = (format ?? file.split('.').pop() ?? '').toLowerCase();
  if (f === 'csv') return 'csv';
  if (f === 'jsonl' || f === 'ndjson' || f === 'json') return 'jsonl';
  throw new InvalidInputError(`cannot tell the format of ${file}: use --format csv or --format jsonl`);
}
