// The ticketing server (票務服務器): builds the ticket face TF_A with a TID unique per operator.
// TIDs are "<operator>-<YYYYMMDD>-<counter>" unless the caller brings its own (checked for reuse).

import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../durable-file.js';
import { InvalidInputError } from '../errors.js';
import { formatServiceDate, parseServiceDate } from '../fields.js';
import { encodeTicketFace, FACE_VERSION, type TicketFace } from '../ticket.js';

/** Remembers issued TIDs so that none is issued twice. */
export interface TidLedger {
  /** Whether the TID was issued. */
  has(tid: string): boolean;
  /** Record an issued TID. */
  add(tid: string): void;
  /** The next serial number for generated TIDs. */
  next(): number;
}

export class MemoryLedger implements TidLedger {
  private readonly tids = new Set<string>();
  private counter = 0;
  has(tid: string) {
    return this.tids.has(tid);
  }
  add(tid: string) {
    this.tids.add(tid);
  }
  next() {
    return ++this.counter;
  }
}

/** A ledger in a JSON file, rewritten atomically (write temp + rename) on each issue. */
export class FileLedger implements TidLedger {
  private data: { counter: number; tids: string[] };
  private set: Set<string>;
  constructor(private readonly path: string) {
    this.data = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : { counter: 0, tids: [] };
    this.set = new Set(this.data.tids);
  }
  has(tid: string) {
    return this.set.has(tid);
  }
  add(tid: string) {
    this.set.add(tid);
    this.data.tids.push(tid);
    this.save();
  }
  next() {
    this.data.counter++;
    this.save();
    return this.data.counter;
  }
  private save() {
    writeFileDurably(this.path, JSON.stringify(this.data));
  }
}

/** What a sales channel asks for; the server fills in TID, issue time and default validity. */
export type TicketRequest = Omit<TicketFace, 'version' | 'operator' | 'tid' | 'issuedAt' | 'validFrom' | 'validUntil' | 'serviceDate' | 'card'> & {
  tid?: string;
  serviceDate: number | string;
  validFrom?: number;
  validUntil?: number;
  issuedAt?: number;
};

/** The ticketing server (票務服務器): builds ticket faces TF_A with a unique TID and default validity. */
export class TicketServer {
  constructor(readonly operator: string, private readonly ledger: TidLedger = new MemoryLedger(), private readonly clock = () => Math.floor(Date.now() / 1000)) {
    if (!/^[A-Za-z0-9_.-]{1,16}$/.test(operator)) throw new InvalidInputError(`operator code "${operator}" must be 1-16 of A-Z a-z 0-9 _ . -`);
  }

  /** A new TF_A. Validity defaults to the service day (UTC) plus 4 hours for services past midnight. */
  createTicket(request: TicketRequest): TicketFace {
    const serviceDate = typeof request.serviceDate === 'string' ? parseServiceDate(request.serviceDate) : request.serviceDate;
    const dayStart = Date.parse(`${formatServiceDate(serviceDate)}T00:00:00Z`) / 1000;
    if (!Number.isFinite(dayStart)) throw new InvalidInputError(`bad service date ${request.serviceDate}`);
    let tid = request.tid;
    if (tid === undefined) {
      do tid = `${this.operator}-${serviceDate}-${String(this.ledger.next()).padStart(6, '0')}`;
      while (this.ledger.has(tid));
    } else if (this.ledger.has(tid)) {
      throw new InvalidInputError(`TID ${tid} was already issued by ${this.operator}`);
    }
    const { tid: _t, serviceDate: _d, ...rest } = request;
    const face: TicketFace = {
      ...rest,
      // Version 2: the authority binds it to the card it signs for (AuthenticationServer.sign).
      version: FACE_VERSION.CARD_BOUND,
      operator: this.operator,
      tid,
      serviceDate,
      validFrom: request.validFrom ?? dayStart,
      validUntil: request.validUntil ?? dayStart + 28 * 3600,
      issuedAt: request.issuedAt ?? this.clock(),
    };
    if (face.validUntil < face.validFrom) throw new InvalidInputError('validUntil is before validFrom');
    encodeTicketFace(face); // validates every field before the TID is spent
    this.ledger.add(tid);
    return face;
  }
}
