// Ingest of gate journals (docs/gates.md "Upload"): a batch is authenticated by the gate's signed checkpoint over
// its hash chain, each PASS by the card's receipt (arbitration, either gate mode); records are stored exactly
// once per (gate, seq) however often, partly, late or concurrently they arrive; failures are kept apart.

import { createHash } from 'node:crypto';
import { concat, equal, fromHex, hex, utf8 } from '../sdk/bytes.js';
import { CryptoError, EticketError, InvalidInputError } from '../sdk/errors.js';
import { decodeTapRecord, recordHash, verifyChain, verifyCheckpoint, type Checkpoint, type TapRecord } from '../sdk/gate-journal.js';
import { parseReceipt, type Receipt } from '../sdk/receipt.js';
import { SymKeyCache } from '../sdk/roles/sym-receipts.js';
import { USAGE_EVENT } from '../sdk/spec.js';
import { encodeUsageRecord } from '../sdk/ticket.js';
import { checkReceipt, type ReceiptContext } from './arbitration.js';
import type { RecentTaps } from './trips.js';
import type { Queryable } from './store/database.js';
import type { CardRecord, ClientRecord, Store } from './store/store.js';

/** The upload itself is not acceptable (wrong gate, not a gate, malformed): the HTTP layer answers 4xx. */
export class JournalUploadError extends EticketError {
  constructor(message: string, readonly status: 400 | 403) {
    super(message);
  }
}

export interface JournalUploadInput {
  gate: string;
  records: string[];
  checkpoint: { gate: string; seq: number; head: string; time: number; signature: string };
}

export interface IngestResult {
  gate: string;
  through: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  /** Reasons of the records kept apart in this batch (for the service log). */
  reasons: string[];
}

interface Row {
  record: TapRecord;
  content?: Uint8Array;
  event?: number;
  counter?: number;
}

/** Bytes as hex text for `decode(…, 'hex')` in SQL. */
const hexText = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** What a card said it did, as one digest: two receipts with one counter and another content betray a copied image. */
export function receiptContent(tid: string, event: number, counter: number, usage: Uint8Array, faceDigest: Uint8Array | undefined): Uint8Array {
  return new Uint8Array(createHash('sha256').update(concat(utf8(tid), new Uint8Array([0, event]), new Uint8Array([counter >> 8, counter & 0xff]), usage, faceDigest ?? new Uint8Array(0))).digest());
}

const EXPECTED_EVENT: Record<'entry' | 'exit', number> = { entry: USAGE_EVENT.ENTRY, exit: USAGE_EVENT.EXIT };

export class JournalIngest {
  private readonly cards = new Map<string, CardRecord | null>();
  private readonly keys = new SymKeyCache();
  /** Since this process started: batches, records stored, duplicates, kept apart. */
  readonly stats = { batches: 0, stored: 0, duplicates: 0, quarantined: 0 };

  constructor(
    private readonly store: Store,
    private readonly receipts: Omit<ReceiptContext, 'card'>,
    /** Where the PASS taps this process stores go once committed, for the matcher of this process. */
    private readonly recent?: RecentTaps,
  ) {}

  private async card(serial: string, q: Queryable): Promise<CardRecord | undefined> {
    if (this.cards.has(serial)) return this.cards.get(serial) ?? undefined;
    const c = await this.store.card(serial, q);
    if (c) {
      if (this.cards.size > 100_000) this.cards.clear();
      this.cards.set(serial, c);
    }
    return c;
  }

  /** Verify one PASS record's receipt and that it says what the record says; throws CryptoError with the reason. */
  private async checkTap(r: TapRecord): Promise<Row> {
    if (!r.pass || !r.receipt) return { record: r, counter: r.counter };
    let receipt: Receipt;
    try {
      receipt = parseReceipt(r.receipt);
    } catch (e) {
      throw new CryptoError(`not a card receipt: ${(e as Error).message}`);
    }
    // Parsed once here, handed to the check (which re-derives nothing it has derived for this card before).
    const checked = await checkReceipt({ encoded: r.receipt, transaction: r.transaction }, { ...this.receipts, card: (s) => this.card(s, this.store.db) }, { keys: this.keys, receipt });
    if (checked.mode !== r.mode) throw new CryptoError(`a ${checked.mode} receipt in a ${r.mode} record`);
    if (checked.tid !== r.tid || (r.cardSerial && checked.cardSerial !== hex(r.cardSerial))) throw new CryptoError(`the receipt is for ticket ${checked.tid} on card ${checked.cardSerial}, the record says ${r.tid} on ${r.cardSerial ? hex(r.cardSerial) : '?'}`);
    if (checked.operator !== undefined && checked.operator !== r.operator) throw new CryptoError(`the receipt is for operator ${checked.operator}, the record says ${r.operator}`);
    if (checked.event !== EXPECTED_EVENT[r.direction]) throw new CryptoError(`the receipt records event ${checked.event}, not the ${r.direction} of the record`);
    if (r.counter !== undefined && checked.counter !== r.counter + 1) throw new CryptoError(`the receipt's counter ${checked.counter} does not follow the record's ${r.counter}`);
    if (!receipt.usage) throw new CryptoError('a usage receipt without its usage record');
    // Protocol v2: the receipt names the face it applies to (DF20); it must be the face the gate journalled. A record
    // without one would dodge the check (and give the receipt another content digest): refused too.
    if (receipt.faceDigest && !r.faceDigest) throw new CryptoError(`the receipt names face ${hex(receipt.faceDigest).slice(0, 16)}…, the record names no face`);
    if (receipt.faceDigest && r.faceDigest && !equal(receipt.faceDigest, r.faceDigest)) throw new CryptoError(`the receipt names face ${hex(receipt.faceDigest).slice(0, 16)}…, the record face ${hex(r.faceDigest).slice(0, 16)}…`);
    const content = receiptContent(checked.tid, checked.event, checked.counter, encodeUsageRecord(receipt.usage), r.faceDigest);
    return { record: r, content, event: checked.event, counter: checked.counter };
  }

  /** Ingest one batch from `client`; the gate is the client that signed the request. */
  async ingest(client: ClientRecord, input: JournalUploadInput): Promise<IngestResult> {
    if (client.role !== 'terminal' || client.kind !== 'gate') throw new JournalUploadError(`client ${client.clientId} is not a gate`, 403);
    if (input.gate !== client.clientId || input.checkpoint.gate !== client.clientId) throw new JournalUploadError(`gate ${client.clientId} may upload only its own journal`, 403);
    if (!input.records.length) throw new JournalUploadError('no records', 400);
    const checkpoint: Checkpoint = { gateId: input.checkpoint.gate, seq: input.checkpoint.seq, head: fromHex(input.checkpoint.head), time: input.checkpoint.time, signature: fromHex(input.checkpoint.signature) };
    const raw = input.records.map((h) => fromHex(h));
    const quarantine: { seq: number | null; hash: Uint8Array; reason: string; record: Uint8Array }[] = [];
    let records: TapRecord[] = [];
    let authentic = false;
    try {
      records = raw.map((b) => decodeTapRecord(b));
      verifyCheckpoint(checkpoint, { suite: client.suite, publicKey: client.publicKey });
      verifyChain(records, checkpoint);
      authentic = true;
    } catch (e) {
      if (!(e instanceof EticketError)) throw e;
      // Kept apart whole: nothing of an unauthenticated batch counts, but nothing is dropped either.
      const reason = `gate authentication: ${(e as Error).message}`;
      raw.forEach((b, i) => quarantine.push({ seq: records[i]?.seq ?? null, hash: recordHash(b), reason, record: b }));
    }
    const rows: Row[] = [];
    if (authentic) {
      for (const r of records) {
        try {
          rows.push(await this.checkTap(r));
        } catch (e) {
          if (!(e instanceof EticketError) && !(e instanceof TypeError)) throw e;
          quarantine.push({ seq: r.seq, hash: r.hash, reason: `receipt: ${(e as Error).message}`, record: r.encoded });
        }
      }
    }
    const through = authentic ? checkpoint.seq : Math.max(0, ...records.map((r) => r.seq));
    let storedRows: Row[] = [];
    const result = await this.store.transaction(async (tx) => {
      let stored = 0;
      let duplicates = 0;
      if (rows.length) {
        // Insert first (the common case: all new); then look at the (gate, seq) that were taken: the same bytes are
        // duplicates (a retry, another process), other bytes a fork (kept apart).
        const inserted = await this.insertTaps(tx, client.clientId, rows);
        stored = inserted.size;
        storedRows = rows.filter((r) => inserted.has(r.record.seq));
        const taken = rows.filter((r) => !inserted.has(r.record.seq));
        if (taken.length) {
          const have = new Map(
            (await tx.query<{ seq: number; hash: Uint8Array }>('SELECT seq, hash FROM gate_taps WHERE gate_id = $1 AND seq = ANY($2::bigint[])', [client.clientId, taken.map((r) => r.record.seq)])).rows.map((x) => [Number(x.seq), new Uint8Array(x.hash)]),
          );
          for (const row of taken) {
            if (equal(have.get(row.record.seq)!, row.record.hash)) duplicates++;
            else quarantine.push({ seq: row.record.seq, hash: row.record.hash, reason: `conflicting record: gate ${client.clientId} seq ${row.record.seq} is already stored with other content (the gate's journal was restored or forked)`, record: row.record.encoded });
          }
        }
        const first = records[0];
        if (first.seq > 1 && inserted.has(first.seq)) {
          const before = (await tx.query<{ hash: Uint8Array }>('SELECT hash FROM gate_taps WHERE gate_id = $1 AND seq = $2', [client.clientId, first.seq - 1])).rows[0];
          if (before && !equal(new Uint8Array(before.hash), first.prev)) await this.fork(tx, client.clientId, first.seq);
        }
        const conflict = quarantine.find((q) => q.reason.startsWith('conflicting record'));
        if (conflict) await this.fork(tx, client.clientId, conflict.seq!);
      }
      if (authentic) {
        await tx.query('INSERT INTO gate_checkpoints (gate_id, seq, head, signed_at, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [client.clientId, checkpoint.seq, checkpoint.head, new Date(checkpoint.time), checkpoint.signature]);
      }
      let quarantined = 0;
      for (const q of quarantine) {
        const r = await tx.query('INSERT INTO journal_quarantine (gate_id, seq, hash, reason, record) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [client.clientId, q.seq, q.hash, q.reason, q.record]);
        quarantined += r.rowCount;
      }
      return { gate: client.clientId, through, stored, duplicates, quarantined, reasons: [...new Set(quarantine.map((q) => q.reason))] };
    });
    // Committed: the matcher of this process may take these taps from memory (they are never changed once stored).
    if (this.recent) {
      for (const { record: r, counter, content } of storedRows) {
        if (!r.pass || !r.operator || !r.tid || !r.cardSerial || !content) continue;
        this.recent.add(r.operator, r.tid, { gate: client.clientId, seq: r.seq, time: new Date(r.time).getTime(), direction: r.direction, station: r.station, card: hex(r.cardSerial), counter: counter!, content: hexText(content) });
      }
    }
    this.stats.batches++;
    this.stats.stored += result.stored;
    this.stats.duplicates += result.duplicates;
    this.stats.quarantined += result.quarantined;
    return result;
  }

  private async fork(tx: Queryable, gate: string, seq: number): Promise<void> {
    await tx.query(
      `INSERT INTO anomalies (fingerprint, kind, gate_id, first_gate, first_seq, detail) VALUES ($1, 'journal_fork', $2, $2, $3, $4) ON CONFLICT (fingerprint) DO NOTHING`,
      [`journal_fork:${gate}:${seq}`, gate, seq, `gate ${gate}'s journal at seq ${seq} does not continue the records stored before: the gate's journal was restored from a copy or replaced`],
    );
  }

  /**
   * Insert the taps in one statement; returns the seqs that were new. New PASS taps queue their ticket for matching.
   * Bytes go as hex text, decoded by the database: on the embedded store, arrays of bytea cost up to twice the CPU
   * per row (serialized element by element in JavaScript) of the same bytes as text (measured, docs/performance.md).
   */
  private async insertTaps(tx: Queryable, gate: string, rows: Row[]): Promise<Set<number>> {
    const col = <T>(f: (r: Row) => T) => rows.map(f);
    const res = await tx.query<{ seq: number; operator: string | null; tid: string | null; pass: boolean }>(
      `INSERT INTO gate_taps (gate_id, seq, hash, tap_time, direction, pass, reason, station, mode, operator, tid, card_serial, counter, event, content, denylist_version, real_name, record)
       SELECT $1, seq, decode(hash, 'hex'), tap_time, direction, pass, reason, station, mode, operator, tid, card_serial, counter, event, decode(content, 'hex'), denylist_version, real_name, decode(record, 'hex')
       FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::boolean[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::int[], $15::text[], $16::int[], $17::text[], $18::text[])
         AS u (seq, hash, tap_time, direction, pass, reason, station, mode, operator, tid, card_serial, counter, event, content, denylist_version, real_name, record)
       ON CONFLICT (gate_id, seq) DO NOTHING RETURNING seq, operator, tid, pass`,
      [
        gate,
        col((r) => r.record.seq),
        col((r) => hexText(r.record.hash)),
        col((r) => new Date(r.record.time)),
        col((r) => r.record.direction),
        col((r) => r.record.pass),
        col((r) => r.record.reason ?? null),
        col((r) => r.record.station),
        col((r) => r.record.mode),
        col((r) => r.record.operator ?? null),
        col((r) => r.record.tid ?? null),
        col((r) => (r.record.cardSerial ? hex(r.record.cardSerial) : null)),
        col((r) => r.counter ?? null),
        col((r) => r.event ?? null),
        col((r) => (r.content ? hexText(r.content) : null)),
        col((r) => r.record.denylistVersion),
        col((r) => r.record.realName ?? null),
        col((r) => hexText(r.record.encoded)),
      ],
    );
    const queued = res.rows.filter((r) => r.pass && r.operator && r.tid);
    if (queued.length) {
      // DO UPDATE, not DO NOTHING: the row lock makes a matcher that is taking this ticket off the queue right now wait
      // for this transaction, and then read these taps; with DO NOTHING it could match without them and drop the entry.
      // The new taps' keys ('gate/seq') are appended under that lock (a row queued before migration 6 keeps NULL:
      // the matcher reads all of that ticket's taps).
      await tx.query(
        `INSERT INTO match_queue (operator, tid, taps) SELECT operator, tid, array_agg(tap) FROM unnest($1::text[], $2::text[], $3::text[]) AS u (operator, tid, tap) GROUP BY operator, tid
         ON CONFLICT (operator, tid) DO UPDATE SET queued_at = match_queue.queued_at, taps = CASE WHEN match_queue.taps IS NULL THEN NULL ELSE match_queue.taps || excluded.taps END`,
        [queued.map((r) => r.operator), queued.map((r) => r.tid), queued.map((r) => `${gate}/${Number(r.seq)}`)],
      );
    }
    return new Set(res.rows.map((r) => Number(r.seq)));
  }
}

/** Checks the shape of an upload body (the HTTP schema does too); InvalidInputError names what is wrong. */
export function checkUploadShape(input: JournalUploadInput): void {
  if (!Array.isArray(input.records) || input.records.some((r) => typeof r !== 'string' || !/^([0-9A-Fa-f]{2})+$/.test(r))) throw new InvalidInputError('records must be hex strings');
}
