// The working directory's TID ledger: which TIDs were issued, and to which card, so TIDs stay unique
// across runs while a batch re-run onto the same card may re-seal its own TIDs (the card then says so).

import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../../sdk/durable-file.js';
import { InvalidInputError } from '../../sdk/errors.js';
import type { TidLedger } from '../../sdk/roles/ticket-server.js';

// A superset of sdk FileLedger's file ({counter, tids}), so either can read the other's ledger.
interface LedgerFile {
  counter: number;
  tids: string[];
  /** TID → card serial (hex) it was sealed to. */
  cards?: Record<string, string>;
  /** Batch line fingerprint (card, line number, request) → the TID it got, so a re-run reuses it. */
  requests?: Record<string, string>;
}

export class CardLedger {
  private data: LedgerFile;
  private known: Set<string>;

  constructor(private readonly path: string) {
    try {
      this.data = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as LedgerFile) : { counter: 0, tids: [] };
    } catch (e) {
      throw new InvalidInputError(`ticket ledger ${path} is not valid JSON: restore it from a backup`, { cause: e });
    }
    if (!Number.isInteger(this.data.counter) || !Array.isArray(this.data.tids)) throw new InvalidInputError(`ticket ledger ${path} is damaged: restore it from a backup`);
    this.data.cards ??= {};
    this.data.requests ??= {};
    this.known = new Set(this.data.tids);
  }

  /** Card serial a TID was sealed to, if any. */
  cardOf(tid: string): string | undefined {
    return this.data.cards![tid];
  }

  /**
   * The ledger as the ticket server sees it for one sealing: `reissuable` (a TID the request brings)
   * counts as free when it already went to this same card, so a re-run re-seals it instead of failing.
   */
  view(cardSerial: string, reissuable?: string): TidLedger {
    return {
      has: (tid) => this.known.has(tid) && !(tid === reissuable && this.cardOf(tid) === cardSerial),
      add: (tid) => this.add(tid, cardSerial),
      next: () => {
        this.data.counter++;
        this.save();
        return this.data.counter;
      },
    };
  }

  /** Why a TID cannot go to this card, or undefined when it can. */
  conflict(tid: string, cardSerial: string): string | undefined {
    if (!this.known.has(tid)) return undefined;
    const card = this.cardOf(tid);
    if (card === cardSerial) return undefined;
    return card ? `TID ${tid} was already issued to card ${card}` : `TID ${tid} was already issued`;
  }

  private add(tid: string, cardSerial: string): void {
    if (!this.known.has(tid)) {
      this.known.add(tid);
      this.data.tids.push(tid);
    }
    this.data.cards![tid] = cardSerial;
    this.save();
  }

  /** TID an earlier run gave to the batch line with this fingerprint. */
  rememberedTid(fingerprint: string): string | undefined {
    return this.data.requests![fingerprint];
  }

  remember(fingerprint: string, tid: string): void {
    this.data.requests![fingerprint] = tid;
    this.save();
  }

  /** Forget a TID the card definitely did not take (it was full), so it can go to another card. */
  release(tid: string): void {
    if (!this.known.delete(tid)) return;
    this.data.tids = this.data.tids.filter((t) => t !== tid);
    delete this.data.cards![tid];
    for (const [k, v] of Object.entries(this.data.requests!)) if (v === tid) delete this.data.requests![k];
    this.save();
  }

  private save(): void {
    writeFileDurably(this.path, JSON.stringify(this.data));
  }
}
