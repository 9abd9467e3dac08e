// A typed client for the back office's HTTP API (docs/backoffice.md, docs/openapi.json), for sellers, issuing
// terminals and gates. Every request is signed with the client's registered key (sdk request-signing); the
// SDK never imports backoffice/: this speaks HTTP only.

import { randomBytes } from 'node:crypto';
import { fromHex } from '../sdk/bytes.js';
import { EticketError, InvalidInputError } from '../sdk/errors.js';
import type { Decrypter, Signer } from '../sdk/crypto/suite.js';
import { totpForStep, type TotpParameters } from '../sdk/crypto/totp.js';
import { checkHolderAnswer, holderJson, openHolderAnswer, type HolderRecord } from '../sdk/roles/realname.js';
import type { TicketFace } from '../sdk/ticket.js';
import type { Bill } from '../sdk/roles/bill.js';
import { loadCredential } from '../sdk/roles/client-credential.js';
import { signRequest } from '../sdk/roles/request-signing.js';
import type { CardCredentials } from '../sdk/roles/trust.js';
import { hex } from '../sdk/bytes.js';

/** The service answered with an error status: `status` (401, 404, 409...), its short `error` code and message. */
export class BackofficeHttpError extends EticketError {
  constructor(readonly status: number, readonly error: string, message: string, readonly method: string, readonly path: string) {
    super(`${method} ${path}: ${status} ${error}: ${message}`);
  }
}

/** The service could not be reached (refused, reset, timed out). */
export class BackofficeUnreachableError extends EticketError {}

/** One class of a service: price and seats left. */
export interface ServiceClassInfo {
  class: string;
  price: number;
  currency: string;
  capacity: number;
  seatsLeft: number;
}

/** A service on sale (a train, route or event on a date) with its classes. */
export interface ServiceInfo {
  serviceId: number;
  operator: string;
  code: string;
  serviceDate: number;
  origin?: string;
  destination?: string;
  departure?: number;
  kind?: number;
  classes: ServiceClassInfo[];
}

/** A booking as the back office holds it: the ticket's state, seat, price, its sealed first ciphertext and bills. */
export interface Booking {
  tid: string;
  status: 'sealed' | 'loaded' | 'deleted' | 'cancelled';
  card: string;
  seller: string;
  serviceId?: number;
  class?: string;
  coach?: string;
  seat?: string;
  price: number;
  currency: string;
  /** The first ciphertext, hex: LOAD it onto the card (IssuingTerminal.load(fromHex(sealed))). */
  sealed: string;
  bill?: Bill;
  refund?: Bill;
}

/** One authority key of the operator's key history (root or certified signing key) and its validity. */
export interface AuthorityKeyInfo {
  keyId: string;
  role: 'root' | 'signing';
  publicKey: string;
  certificate?: string;
  identity?: string;
  validFrom: string;
  validUntil?: string;
  retiredAt?: string;
}

/** The operator's authority keys, current and retired, as gates fetch them. */
export interface KeySet {
  operator: string;
  suite: string;
  current?: string;
  keys: AuthorityKeyInfo[];
}

/** The back office's arbitration of a ticket, bill or receipt: valid or not, why, and the key that signed it. */
export interface Verdict {
  ok: boolean;
  kind: 'ticket' | 'bill' | 'receipt';
  reason?: string;
  signer?: { keyId?: string; role?: string; suite?: string; validFrom?: string; validUntil?: string; retiredAt?: string; subject?: string };
  signedAt?: string;
  validAtTime?: boolean;
  subject: Record<string, unknown>;
}

/** A card receipt a terminal hands to the back office (with its sym transaction in gate mode sym). */
export interface ReceiptUpload {
  /** B4 as the card sent it. */
  receipt: Uint8Array;
  /** Gate mode sym: the transaction record (symTransactionToJson). */
  transaction?: Record<string, string>;
  deletion?: boolean;
}

/** One batch of a gate's journal: consecutive records ending with the checkpoint that signs their head. */
export interface JournalUpload {
  gate: string;
  /** Encoded records (hex), consecutive seqs. */
  records: string[];
  checkpoint: { gate: string; seq: number; head: string; time: number; signature: string };
}

export interface JournalUploadReply {
  gate: string;
  /** Every record of this gate up to here is stored (or kept apart with its reason): the gate may drop them. */
  through: number;
  stored: number;
  duplicates: number;
  quarantined: number;
}

/** Where the back office is, and who signs the requests. */
export interface BackofficeClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  clientId: string;
  signer: Signer;
  /** Per request (ms, default 15 s). */
  timeoutMs?: number;
  /** For tests: the clock the timestamps come from. */
  now?: () => number;
  /** Checking terminals: the key holder answers are sealed to and the TOTP shared with the service. */
  realName?: { decrypter: Decrypter; totp: { secret: Uint8Array; parameters: TotpParameters } };
  /**
   * Where the last TOTP step this terminal spent is kept between processes (a CLI run per inspection): the next
   * run takes the next step instead of one the service has seen. Default: in memory, this client only.
   */
  totpSteps?: TotpStepStore;
}

/** Where a checking terminal keeps the last TOTP step it spent on a holder request (one request per step). */
export interface TotpStepStore {
  /** The last step spent, or -1 when none was. */
  last(): number;
  /** Remember that this step is spent (durably, before the request goes out). */
  spent(step: number): void;
}

/** A real-name ticket's holder as a checking terminal got it: proven to belong to the ticket on the card. */
export interface HolderRead {
  holder: HolderRecord;
  readsLeft: number;
  expiresAt: Date;
}

function cardJson(c: CardCredentials): Record<string, string> {
  const out: Record<string, string> = { suite: c.suite, serial: hex(c.serial) };
  if (c.encryptionCertificate) out.encryptionCertificate = hex(c.encryptionCertificate);
  if (c.signingCertificate) out.signingCertificate = hex(c.signingCertificate);
  if (c.identity) out.identity = c.identity;
  return out;
}

/**
 * The back office's HTTP API for sellers, issuing terminals and gates. Every request is signed with the client's
 * registered key; an error status is a {@link BackofficeHttpError}, no answer a {@link BackofficeUnreachableError}.
 *
 * @example
 * const office = BackofficeClient.fromCredential('http://127.0.0.1:8080', 'kiosk-1.json', process.env.KIOSK_PASSPHRASE!);
 * const issuing = new IssuingTerminal(session, { authorize: (challenge) => office.authorizeIssuer(challenge) });
 * const { serial } = await issuing.open();
 * for (const t of await office.pending(serial)) await issuing.load(t.sealed);
 */
export class BackofficeClient {
  private lastTotpStep = -1;

  constructor(private readonly options: BackofficeClientOptions) {}

  /** A client from a credential file written by `eticket seller add` / `terminal add`. */
  static fromCredential(url: string, file: string, passphrase: string, options: Partial<BackofficeClientOptions> = {}): BackofficeClient {
    const id = loadCredential(file, passphrase);
    return new BackofficeClient({ url, clientId: id.clientId, signer: id.signer, realName: id.realName, ...options });
  }

  /** The registered client id the requests are signed as. */
  get clientId(): string {
    return this.options.clientId;
  }

  /** One signed request; the raw answer (tests use it to replay a request). */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, authorization?: string): Promise<T> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const auth = authorization ?? this.authorization(method, path, text);
    let res: Response;
    try {
      res = await fetch(new URL(path, this.options.url), {
        method,
        headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : text,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
    } catch (e) {
      throw new BackofficeUnreachableError(`back office at ${this.options.url} unreachable: ${(e as Error).message}`, { cause: e });
    }
    const reply = await res.text();
    let json: unknown;
    try {
      json = reply ? JSON.parse(reply) : undefined;
    } catch {
      throw new BackofficeHttpError(res.status, 'bad_reply', 'the answer is not JSON', method, path);
    }
    if (!res.ok) {
      const e = (json ?? {}) as { error?: string; message?: string };
      throw new BackofficeHttpError(res.status, e.error ?? 'error', e.message ?? res.statusText, method, path);
    }
    return json as T;
  }

  /** The Authorization header for one request (fresh timestamp and nonce). */
  authorization(method: string, path: string, body: string): string {
    return signRequest(this.options.signer, this.options.clientId, method, path, body, (this.options.now ?? Date.now)());
  }

  // ------------------------------------------------------------------------------------------ sellers --

  /** Services on sale, optionally for one date (YYYY-MM-DD) or train. */
  async services(filter: { date?: string; train?: string } = {}): Promise<ServiceInfo[]> {
    const q = new URLSearchParams();
    if (filter.date) q.set('date', filter.date);
    if (filter.train) q.set('train', filter.train);
    const qs = q.toString();
    return (await this.request<{ services: ServiceInfo[] }>('GET', `/v1/services${qs ? `?${qs}` : ''}`)).services;
  }

  /**
   * Book a seat for `card`; `requestId` makes a retry after a lost answer return the same booking. With `holder`
   * it is a real-name ticket: the back office keeps the record, the card gets only 95/96.
   */
  book(request: { service: number; class: string; card: CardCredentials; passenger?: string; holder?: HolderRecord; requestId?: string }): Promise<Booking> {
    const { card, holder, ...rest } = request;
    return this.request('POST', '/v1/bookings', { ...rest, card: cardJson(card), ...(holder ? { holder: holderJson(holder) } : {}) });
  }

  /** One booking of this seller, by TID. */
  booking(tid: string): Promise<Booking> {
    return this.request('GET', `/v1/bookings/${encodeURIComponent(tid)}`);
  }

  /** The sealed first ciphertext of a booking, to LOAD onto its card. */
  async sealedTicket(tid: string): Promise<Uint8Array> {
    return fromHex((await this.request<{ sealed: string }>('GET', `/v1/bookings/${encodeURIComponent(tid)}/sealed`)).sealed);
  }

  /** The signed sale bill of a booking. */
  bill(tid: string): Promise<Bill> {
    return this.request('GET', `/v1/bookings/${encodeURIComponent(tid)}/bill`);
  }

  /** Cancel; a ticket already on a card needs the card's deletion receipt. */
  cancel(tid: string, deletion?: ReceiptUpload): Promise<Booking> {
    return this.request('POST', `/v1/bookings/${encodeURIComponent(tid)}/cancel`, deletion ? { receipt: hex(deletion.receipt), ...(deletion.transaction ? { transaction: deletion.transaction } : {}) } : {});
  }

  // ---------------------------------------------------------------------------------------- terminals --

  /** Issuing terminals: the sealed tickets waiting for this card (its serial). */
  async pending(card: Uint8Array): Promise<{ tid: string; sealed: Uint8Array; issuedAt: string }[]> {
    const r = await this.request<{ tickets: { tid: string; sealed: string; issuedAt: string }[] }>('GET', `/v1/terminal/pending?card=${hex(card)}`);
    return r.tickets.map((t) => ({ ...t, sealed: fromHex(t.sealed) }));
  }

  /** Issuing terminals: report that the card took the ticket (LOAD answered, or ALREADY_EXISTS). */
  loaded(tid: string, card: Uint8Array, sequenceNumber?: number): Promise<{ tid: string; status: 'loaded' }> {
    return this.request('POST', '/v1/terminal/loaded', { tid, card: hex(card), ...(sequenceNumber ? { sequenceNumber } : {}) });
  }

  /** Gates and terminals: hand over a card's usage or deletion receipt; the back office checks and stores it. */
  receipt(r: ReceiptUpload): Promise<{ tid: string; card: string; counter: number; kind: 'usage' | 'deletion'; mode: 'pki' | 'sym' }> {
    return this.request('POST', '/v1/receipts', { receipt: hex(r.receipt), ...(r.transaction ? { transaction: r.transaction } : {}), ...(r.deletion ? { deletion: true } : {}) });
  }

  /**
   * EXTERNAL AUTHENTICATE data for a card's challenge, from the back office (issuing terminals only): pass this as
   * the issuing terminal's authoriser, `new IssuingTerminal(session, { authorize: (c) => client.authorizeIssuer(c) })`.
   */
  async authorizeIssuer(cardChallenge: Uint8Array): Promise<Uint8Array> {
    return fromHex((await this.request<{ authorization: string }>('POST', '/v1/terminal/authorization', { challenge: hex(cardChallenge) })).authorization);
  }

  /** The operator's authority key history (gates refresh their trusted keys from it). */
  keys(): Promise<KeySet> {
    return this.request('GET', '/v1/keys');
  }

  // ------------------------------------------------------------------------------------------------ gates --

  /** Upload one batch of this gate's journal (stored once per gate and seq, however often it is sent). */
  uploadJournal(batch: JournalUpload): Promise<JournalUploadReply> {
    return this.request('POST', '/v1/journal', batch);
  }

  /** The denylist: a signed delta from version `since` when the service can give one, else the full list. */
  denylist(since?: number): Promise<Record<string, unknown>> {
    return this.request('GET', `/v1/denylist${since !== undefined ? `?since=${since}` : ''}`);
  }

  // ---------------------------------------------------------------------------------------- real-name --

  /** The TOTP step and time for the next request: ours, or the next one we have not spent (one code, one request). */
  private totpFor(p: TotpParameters): { step: number; time: number } {
    const now = Math.floor((this.options.now ?? Date.now)() / 1000);
    const ours = Math.floor(now / p.period);
    const last = Math.max(this.lastTotpStep, this.options.totpSteps?.last() ?? -1);
    const step = last >= ours && last + 1 <= ours + 1 ? last + 1 : ours;
    this.lastTotpStep = step;
    this.options.totpSteps?.spent(step);
    return { step, time: Math.max(now, step * p.period) };
  }

  /**
   * The holder of a real-name ticket this terminal has just read from a card (`face`, from VERIFY or READ): a
   * signed request with a fresh TOTP code; the answer is opened with the terminal's key and checked against the
   * face (TID, reference, binding 96). Throws BackofficeHttpError for a refusal (its `error` says why),
   * HolderBindingError when the record does not belong to this ticket, CryptoError for an answer that does not open.
   */
  async holder(face: TicketFace): Promise<HolderRead> {
    const rn = this.options.realName;
    if (!rn) throw new InvalidInputError(`client ${this.options.clientId} has no real-name credentials (a gate or inspector registered with \`eticket terminal add\`)`);
    if (!face.holderRef || !face.holderBinding) throw new InvalidInputError(`ticket ${face.tid} is not a real-name ticket`);
    const { step, time } = this.totpFor(rn.totp.parameters);
    const challenge = new Uint8Array(randomBytes(16));
    const body = { operator: face.operator, holderRef: hex(face.holderRef), totp: { code: totpForStep(rn.totp.secret, step, rn.totp.parameters), time }, challenge: hex(challenge) };
    const r = await this.request<{ tid: string; sealed: string; readsLeft: number; expiresAt: string }>('POST', `/v1/tickets/${encodeURIComponent(face.tid)}/holder`, body);
    const answer = openHolderAnswer(rn.decrypter, fromHex(r.sealed));
    return { holder: checkHolderAnswer(answer, face, challenge), readsLeft: answer.readsLeft, expiresAt: new Date(answer.expiresAt * 1000) };
  }

  // -------------------------------------------------------------------------------------- arbitration --

  /** Arbitration: the verdict on a bill, a card receipt or a ticket, against the key history. */
  verify(evidence: { bill: Bill } | { receipt: Uint8Array; transaction?: Record<string, string> } | { ticket: { face: Uint8Array; verificationCode: Uint8Array } }): Promise<Verdict> {
    if ('bill' in evidence) return this.request('POST', '/v1/verify', { bill: evidence.bill });
    if ('receipt' in evidence) return this.request('POST', '/v1/verify', { receipt: hex(evidence.receipt), ...(evidence.transaction ? { transaction: evidence.transaction } : {}) });
    return this.request('POST', '/v1/verify', { ticket: { face: hex(evidence.ticket.face), verificationCode: hex(evidence.ticket.verificationCode) } });
  }
}
