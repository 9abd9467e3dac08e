// The denylist a gate holds: the cards it refuses offline (REJECT denylisted), at a version. Documents from the
// back office (full or delta) are checked against the authority's root key before they replace it, and the list
// is kept in a file (write-then-rename) so that a restarted gate refuses the same cards before it is online again.

import { existsSync, readFileSync } from 'node:fs';
import { hex } from '../sdk/bytes.js';
import { writeFileDurably } from '../sdk/durable-file.js';
import { InvalidInputError } from '../sdk/errors.js';
import { verifyDenylist, type DenylistDocument, type DenylistTrust } from '../sdk/roles/denylist.js';

interface DenylistFile {
  format: 'eticket-gate-denylist/1';
  operator: string;
  version: number;
  cards: string[];
}

export class DenylistCache {
  private cards = new Set<string>();
  private _version = 0;

  /** `file`: where the list is kept between runs (none: memory only). */
  constructor(readonly trust: DenylistTrust, private readonly file?: string) {
    if (file && existsSync(file)) {
      let f: DenylistFile;
      try {
        f = JSON.parse(readFileSync(file, 'utf8')) as DenylistFile;
      } catch (e) {
        throw new InvalidInputError(`denylist file ${file} is unreadable: ${(e as Error).message}`);
      }
      if (f.format !== 'eticket-gate-denylist/1' || f.operator !== trust.operator || !Array.isArray(f.cards)) throw new InvalidInputError(`${file} is not a denylist of operator ${trust.operator}`);
      this.cards = new Set(f.cards);
      this._version = f.version;
    }
  }

  /** The version held: it goes into every journal record. */
  get version(): number {
    return this._version;
  }

  get size(): number {
    return this.cards.size;
  }

  has(serial: Uint8Array): boolean {
    return this.cards.size > 0 && this.cards.has(hex(serial));
  }

  list(): string[] {
    return [...this.cards].sort();
  }

  /**
   * Apply a document from the back office (verified first: a forged or foreign list changes nothing). A delta
   * applies only on top of its base version; an older or equal version is ignored. Returns whether it applied.
   */
  apply(document: unknown): boolean {
    const d: DenylistDocument = verifyDenylist(document, this.trust);
    if (d.version <= this._version) return false;
    let next: Set<string>;
    if (d.kind === 'full') next = new Set(d.cards);
    else {
      if (d.base !== this._version) return false;
      next = new Set(this.cards);
      for (const c of d.added!) next.add(c);
      for (const c of d.removed!) next.delete(c);
    }
    if (this.file) writeFileDurably(this.file, JSON.stringify({ format: 'eticket-gate-denylist/1', operator: this.trust.operator, version: d.version, cards: [...next].sort() } satisfies DenylistFile) + '\n');
    this.cards = next;
    this._version = d.version;
    return true;
  }
}
