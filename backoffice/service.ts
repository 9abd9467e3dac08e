// The back office's operations over its store: issue (TID, TF_V, seal, bill, all in one transaction before any
// LOAD), book seats, cancel and refund, record receipts, rotate the authority's signing key. The CLI calls
// them in process; `eticket serve` exposes them over HTTP. Depends on sdk/ only.

import { createHash, randomBytes } from 'node:crypto';
import { equal, hex } from '../sdk/bytes.js';
import { CryptoError, InvalidInputError } from '../sdk/errors.js';
import { formatServiceDate } from '../sdk/fields.js';
import { keyId, type Signer } from '../sdk/crypto/suite.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { faceDigest, signBill, signBillAsync, type Bill, type BillItem } from '../sdk/roles/bill.js';
import { signKeyCertificate } from '../sdk/roles/key-certificate.js';
import { TicketServer, type TicketRequest } from '../sdk/roles/ticket-server.js';
import type { CardCredentials, CardTrust } from '../sdk/roles/trust.js';
import type { OperatorMasterKey } from '../sdk/roles/sym-receipts.js';
import type { SuiteName } from '../sdk/spec.js';
import { checkReceipt, type CheckedReceipt, type ReceiptEvidence } from './arbitration.js';
import { DenylistPublisher } from './denylist.js';
import { JournalIngest } from './journal.js';
import { RecentTaps, TripMatcher } from './trips.js';
import { decodeTicketFace, PRICING, TICKET_KIND, type TicketFace } from '../sdk/ticket.js';
import { parseReceipt } from '../sdk/receipt.js';
import { holderRecord, type HolderRecord } from '../sdk/roles/realname.js';
import { RealNameService, type HolderVault, type RealNameOptions } from './realname.js';
import { DatabaseError, type Queryable } from './store/database.js';
import { NotFoundError, StoreConflictError, type AuthorityKeyRecord, type BillRecord, type SeatTaken, type Store, type TicketRecord } from './store/store.js';

/**
 * Which key signs TF_V: the current certified signing key, with its A4 in TF_V (protocol version 2), so cards
 * holding only the root key accept it and refuse it once retired. 'root' signed every ticket with the root key.
 */
export const TFV_SIGNED_BY: 'root' | 'current' = 'current';

/** Where the back office gets its private keys: the working directory's key store, opened with the passphrase. */
export interface KeyCustody {
  readonly operator: string;
  readonly suite: SuiteName;
  /** Public half of the root key (no passphrase needed to read it). */
  readonly rootPublicKey: Uint8Array;
  /** The authority's root key: key 1 as cards hold it (PUT KEY P1=01). */
  root(): Signer;
  /** The private half of a stored signing key (by its key store name). */
  signing(record: AuthorityKeyRecord): Signer;
  /** How card keys are traced to the trust root (CA or KGC). */
  readonly cardTrust: CardTrust;
  /** Checking master keys (gate mode sym), to re-check MAC receipts. */
  masterKeys(): OperatorMasterKey[];
  /** The holder master keys (real-name tickets); undefined where there are none. */
  holderVault?(): HolderVault | undefined;
}

export interface IssueInput {
  request: TicketRequest;
  card: CardCredentials;
  sellerId?: string;
  /** Fingerprint of the batch line or API request: the same key gets the same ticket back, never a second one. */
  requestKey?: string;
  /** Take a seat of this service and class (the face gets train, route, coach, seat, class, fare from it). */
  booking?: { serviceId: number; class: string };
  /**
   * Rebooking: the ticket this one replaces. The replacement is sealed first and the old ticket stays open
   * (named `replacedBy` the new TID) until the card's deletion receipt for it arrives (`recordDeletion`), which
   * closes and refunds it; an old ticket already deleted is closed and refunded here. A replacement issued
   * earlier for the same old ticket and never loaded is cancelled: the latest rebooking wins.
   */
  replaces?: string;
  /**
   * A real-name ticket: the holder's record, kept encrypted by the back office until the ticket expires; the face
   * gets 95 holderRef and 96 holderBinding instead of a name (the request must not carry `passenger`).
   */
  holder?: HolderRecord;
}

export interface IssueOutcome {
  /** 'new': issued now; 'existing': the request (key or TID) was issued before, here it is again. */
  status: 'new' | 'existing';
  ticket: TicketRecord;
  face: TicketFace;
  bill?: BillRecord;
  seat?: SeatTaken;
}

/** A bill's JSON, parsed. */
export function billOf(r: BillRecord): Bill {
  return JSON.parse(r.document) as Bill;
}

function tidFor(operator: string, serviceDate: number, n: number): string {
  return `${operator}-${serviceDate}-${String(n).padStart(6, '0')}`;
}

/**
 * Card trust with the chain check remembered per card and certificate for a few minutes: a batch seals many
 * tickets to one card, and node-forge's certificate check costs milliseconds each time.
 */
class CachedCardTrust implements CardTrust {
  private readonly cache = new Map<string, { key: Uint8Array; until: number }>();
  readonly suite: CardTrust['suite'];
  readonly needsSigningCertificate: boolean;

  constructor(private readonly inner: CardTrust, private readonly ttlMs = 300_000) {
    this.suite = inner.suite;
    this.needsSigningCertificate = inner.needsSigningCertificate;
  }

  private cached(kind: string, card: CardCredentials, cert: Uint8Array | undefined, check: () => Uint8Array): Uint8Array {
    const k = `${kind}:${hex(card.serial)}:${card.identity ?? ''}:${cert ? createHash('sha256').update(cert).digest('hex') : ''}`;
    const hit = this.cache.get(k);
    if (hit && hit.until > Date.now()) return hit.key;
    const key = check();
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(k, { key, until: Date.now() + this.ttlMs });
    return key;
  }

  encryptionKey(card: CardCredentials): Uint8Array {
    return this.cached('enc', card, card.encryptionCertificate, () => this.inner.encryptionKey(card));
  }

  signingKey(card: CardCredentials): Uint8Array {
    return this.cached('sig', card, card.signingCertificate, () => this.inner.signingKey(card));
  }
}

/** What makes a card's stored row complete for these credentials (Backoffice.recordedCards). */
function recordedCardKey(card: CardCredentials): string {
  const h = (b?: Uint8Array) => (b ? createHash('sha256').update(b).digest('hex') : '');
  return `${hex(card.serial)}:${card.suite}:${h(card.encryptionCertificate)}:${h(card.signingCertificate)}:${card.identity ?? ''}`;
}

export class Backoffice {
  private readonly signers = new Map<string, Signer>();
  /** Cards whose row this back office has committed with the credentials named by the key (recordedCardKey). */
  private readonly recordedCards = new Set<string>();
  private rootRecord?: AuthorityKeyRecord;
  private readonly cardTrust: CardTrust;
  /** Real-name tickets: holder records, terminal reads, destruction (backoffice/realname.ts). */
  readonly realName: RealNameService;

  constructor(
    readonly store: Store,
    readonly keys: KeyCustody,
    private readonly clock: () => number = () => Math.floor(Date.now() / 1000),
    realNameOptions: RealNameOptions = {},
  ) {
    this.cardTrust = new CachedCardTrust(keys.cardTrust);
    this.realName = new RealNameService(store, () => keys.holderVault?.(), clock, realNameOptions);
  }

  get operator(): string {
    return this.keys.operator;
  }

  private ingestor?: JournalIngest;
  /** The PASS taps this process stored lately: its matcher takes them from here instead of reading them back. */
  readonly recentTaps = new RecentTaps();
  private publisher?: DenylistPublisher;

  /** Gate journal ingest (docs/gates.md): verifies and stores uploaded batches exactly once per (gate, seq). */
  get journal(): JournalIngest {
    return (this.ingestor ??= new JournalIngest(this.store, { cardTrust: this.cardTrust, masterKeys: this.keys.masterKeys() }, this.recentTaps));
  }

  /** Signed denylist documents for gates (signed with the current signing key, like bills). */
  get denylist(): DenylistPublisher {
    return (this.publisher ??= new DenylistPublisher(this.store, this.operator, () => this.currentSigner(), this.clock));
  }

  /** The trip matcher; `nowMs` is its clock (a simulation runs its own). */
  matcher(nowMs?: () => number): TripMatcher {
    return new TripMatcher(this.store, this.operator, nowMs, this.recentTaps);
  }

  /** Record the root key in the key history (first open of a store, or an old working directory). */
  async ensureRootKey(createdAt = new Date()): Promise<AuthorityKeyRecord> {
    if (this.rootRecord) return this.rootRecord;
    const pub = this.keys.rootPublicKey;
    const id = hex(keyId(pub));
    let rec = await this.store.authorityKey(id);
    if (!rec) {
      await this.store.addAuthorityKey({ keyId: id, operator: this.operator, suite: this.keys.suite, role: 'root', publicKey: pub, keyName: 'authority', validFrom: createdAt });
      rec = (await this.store.authorityKey(id))!;
    }
    if (rec.role !== 'root' || !equal(rec.publicKey, pub)) throw new CryptoError(`key ${id} in the store is not this working directory's root key`);
    this.rootRecord = rec;
    return rec;
  }

  private signerFor(rec: AuthorityKeyRecord): Signer {
    let s = this.signers.get(rec.keyId);
    if (!s) {
      s = rec.role === 'root' && equal(rec.publicKey, this.keys.rootPublicKey) ? this.keys.root() : this.keys.signing(rec);
      if (!equal(s.publicKey, rec.publicKey)) throw new CryptoError(`the key store's ${rec.keyName} is not key ${rec.keyId}`);
      this.signers.set(rec.keyId, s);
    }
    return s;
  }

  /** The key bills are signed with now (the current certified signing key, else the root key). */
  async currentSigner(q?: Queryable): Promise<{ record: AuthorityKeyRecord; signer: Signer }> {
    await this.ensureRootKey();
    const record = (await this.store.currentSigningKey(this.operator, q))!;
    return { record, signer: this.signerFor(record) };
  }

  /** The authentication server of the key that signs now: the root, or the current signing key with its A4. */
  private async tfvAuthority(q?: Queryable): Promise<{ record: AuthorityKeyRecord; authority: AuthenticationServer; signing?: { record: AuthorityKeyRecord; signer: Signer } }> {
    const root = await this.ensureRootKey();
    const current = TFV_SIGNED_BY === 'root' ? undefined : await this.currentSigner(q);
    const { record, signer } = current ?? { record: root, signer: this.signerFor(root) };
    // `signing`: the current signing key as read in this transaction, for the bill signed in it (one read, not two).
    return { record, authority: new AuthenticationServer(signer, this.cardTrust, record.role === 'signing' ? { certificate: record.certificate } : {}), signing: current };
  }

  /**
   * An issuing terminal's EXTERNAL AUTHENTICATE for a card's challenge, signed by the key that signs tickets now
   * (with its A4): with it the terminal reads the card's serial and certificates to have tickets sealed to it.
   */
  async authorizeIssuer(cardChallenge: Uint8Array): Promise<{ authorization: Uint8Array; keyId: string }> {
    const { record, authority } = await this.tfvAuthority();
    return { authorization: authority.authorizeIssuer(cardChallenge), keyId: record.keyId };
  }

  /**
   * Issue one ticket: TID, TF_A, TF_V, the first ciphertext and the bill, recorded in one transaction before
   * anything reaches a card. A request key or TID seen before gives the stored ticket back (status 'existing'):
   * a re-run after a crash loads what was sealed, and never issues a second TID for the same line.
   */
  async issue(input: IssueInput): Promise<IssueOutcome> {
    // One person, one canonical record: the holder is checked and normalised before anything is recorded.
    if (input.holder) input = { ...input, holder: holderRecord(input.holder) };
    const serial = hex(input.card.serial);
    if (input.card.suite !== this.keys.suite) throw new InvalidInputError(`card ${serial} is ${input.card.suite}, this back office is ${this.keys.suite}`);
    if (input.holder && input.request.passenger !== undefined) throw new InvalidInputError('a real-name ticket carries no passenger name: the holder record replaces it');
    if (input.holder && (input.request.holderRef !== undefined || input.request.holderBinding !== undefined)) throw new InvalidInputError('holderRef and holderBinding are made by the back office');
    // Checked before the transaction: a card that cannot be traced to the trust root gets nothing.
    this.cardTrust.encryptionKey(input.card);
    await this.ensureRootKey();
    const cardKey = recordedCardKey(input.card);
    let recorded = false;
    const outcome = await this.store.transaction(async (tx) => {
      const op = this.operator;
      if (input.requestKey) {
        const tid = await this.store.tidForRequest(op, input.requestKey, tx);
        if (tid) {
          const existing = await this.existing(tid, serial, tx, input.holder);
          if (existing) return this.sameReplacement(existing, input.replaces, tx);
        }
      }
      if (input.request.tid) {
        const existing = await this.existing(input.request.tid, serial, tx, input.holder);
        if (existing) return this.sameReplacement(existing, input.replaces, tx);
      }
      // The ticket being replaced is locked and checked before a TID or a seat is spent on its replacement.
      const old = input.replaces === undefined ? undefined : await this.replaceable(input.replaces, tx);
      // A card this back office has recorded (committed) with these credentials needs no second upsert: the row only
      // ever fills in missing fields (recordCard), and a batch would pay a statement per ticket for nothing.
      recorded = true;
      if (!this.recordedCards.has(cardKey)) await this.store.recordCard({ serial, suite: input.card.suite, encryptionCertificate: input.card.encryptionCertificate, signingCertificate: input.card.signingCertificate, identity: input.card.identity }, tx);
      // Validate the request (and learn its service date) before a TID is spent; the TID itself comes from the store.
      const server = () => new TicketServer(op, undefined, this.clock);
      const probe = server().createTicket({ ...input.request, tid: input.request.tid ?? `${op}-probe` });
      let tid = input.request.tid;
      if (tid) {
        if (!(await this.store.claimTid(op, tid, serial, input.requestKey, tx))) {
          const row = await this.store.tidRow(op, tid, tx);
          throw new StoreConflictError(`TID ${tid} was already issued${row?.cardSerial ? ` to card ${row.cardSerial}` : ''}: give this ticket a new tid`, 'tid_taken');
        }
      } else {
        do tid = tidFor(op, probe.serviceDate, await this.store.nextTidNumber(op, tx));
        while (!(await this.store.claimTid(op, tid, serial, input.requestKey, tx)));
      }
      let request: TicketRequest = { ...input.request, tid };
      let seat: SeatTaken | undefined;
      if (input.booking) {
        const svc = await this.store.service(input.booking.serviceId, tx);
        if (!svc || svc.operator !== op) throw new NotFoundError(`no service ${input.booking.serviceId}`);
        seat = await this.store.takeSeat(svc.serviceId, input.booking.class, op, tid, tx);
        request = { ...request, serviceDate: svc.serviceDate, train: svc.code, origin: svc.origin ?? request.origin, destination: svc.destination ?? request.destination, departure: svc.departure ?? request.departure, kind: svc.kind ?? request.kind, coach: seat.coach, seat: seat.seat, travelClass: seat.class, fare: seat.price, currency: seat.currency };
      }
      let salt: Uint8Array | undefined;
      if (input.holder) {
        const p = this.realName.prepare(op, tid, input.holder);
        salt = p.salt;
        request = { ...request, holderRef: p.holderRef, holderBinding: p.binding };
      }
      const face = server().createTicket(request);
      const { record, authority, signing } = await this.tfvAuthority(tx);
      const signed = authority.sign(face, input.card);
      const sealed = authority.seal(signed, input.card);
      const ticket = await this.store.insertTicket(
        {
          operator: op,
          tid,
          cardSerial: serial,
          sellerId: input.sellerId,
          keyId: record.keyId,
          face: signed.faceEncoded,
          verificationCode: signed.verificationCodeEncoded,
          sealed,
          serviceDate: face.serviceDate,
          fare: face.fare,
          currency: face.currency,
          issuedAt: new Date(face.issuedAt * 1000),
          serviceId: seat?.serviceId,
          travelClass: seat?.class,
          coach: seat?.coach,
          seat: seat?.seat,
        },
        tx,
      );
      if (!ticket) throw new StoreConflictError(`TID ${tid} is held by another ticket`, 'tid_taken');
      if (input.holder) await this.realName.recordIssued(face, salt!, input.holder, tx);
      if (old) {
        await this.store.setReplacedBy(op, old.tid, tid, tx);
        // Never loaded: nothing on a card to delete, it is cancelled now. Already deleted: nothing to wait for.
        if (old.status === 'sealed') await this.store.cancelSealed(op, old.tid, tx);
        if (old.status === 'sealed' || old.status === 'deleted') await this.refundOnce(old, tx);
      }
      const bill = await this.bill('sale', ticket, face, input.sellerId, tx, signing);
      return { status: 'new' as const, ticket, face, bill, seat };
    });
    if (recorded) this.recordedCards.add(cardKey);
    return outcome;
  }

  /**
   * Issue a batch's chunk: the TIDs, TF_V, sealed tickets and sale bills of its plain requests recorded in ONE
   * transaction of a few statements (TIDs claimed, tickets and bills inserted, each in one statement for all),
   * before anything reaches a card; the same records issue() writes, so a re-run, a `load --pending` and a crash
   * recovery see no difference. A request the store already names (its tid or request key: a re-run, a duplicate),
   * one that books a seat, replaces a ticket or carries a holder, one whose face does not validate, and the whole
   * chunk when its transaction fails (a concurrent issuer took a TID meanwhile), go through issue() one by one
   * afterwards. Results in input order: the outcome, or the error issue() threw for that request.
   */
  async issueMany(inputs: IssueInput[]): Promise<({ outcome: IssueOutcome } | { error: Error })[]> {
    const results: ({ outcome: IssueOutcome } | { error: Error })[] = new Array(inputs.length);
    const op = this.operator;
    // A TicketServer remembers the TIDs it made (a second face for one TID is refused): one per face, as in issue().
    const server = () => new TicketServer(op, undefined, this.clock);
    const first = inputs.find((x) => x.card.suite === this.keys.suite);
    const serial = first ? hex(first.card.serial) : '';
    // Each request's face is made (and validated) once, under a stand-in TID when the store is to number it.
    const bulk: { i: number; input: IssueInput; face: TicketFace }[] = [];
    const tids = new Set<string>();
    const keys = new Set<string>();
    for (const [i, input] of inputs.entries()) {
      if (input.booking || input.replaces !== undefined || input.holder || input.card.suite !== this.keys.suite || hex(input.card.serial) !== serial) continue;
      // A second request for the same tid or key in one chunk gets the first one's ticket (or its conflict) from issue().
      if ((input.request.tid !== undefined && tids.has(input.request.tid)) || (input.requestKey !== undefined && keys.has(input.requestKey))) continue;
      if (input.request.holderRef !== undefined || input.request.holderBinding !== undefined) continue;
      let face: TicketFace;
      try {
        this.cardTrust.encryptionKey(input.card);
        face = server().createTicket({ ...input.request, tid: input.request.tid ?? `${op}-probe` });
      } catch {
        continue; // issue() answers it with its own error (or the ticket a re-run finds)
      }
      if (input.request.tid !== undefined) tids.add(input.request.tid);
      if (input.requestKey !== undefined) keys.add(input.requestKey);
      bulk.push({ i, input, face });
    }
    if (bulk.length) {
      await this.ensureRootKey();
      const card = bulk[0].input.card;
      const cardKey = recordedCardKey(card);
      try {
        const done = await this.store.transaction(async (tx) => {
          const named = await this.store.tidsNamed(op, [...tids], [...keys], tx);
          const namedTids = new Set(named.map((n) => n.tid));
          const namedKeys = new Set(named.map((n) => n.requestKey));
          const fresh = bulk.filter((b) => !(b.input.request.tid !== undefined && namedTids.has(b.input.request.tid)) && !(b.input.requestKey !== undefined && namedKeys.has(b.input.requestKey)));
          const numbered = fresh.filter((b) => b.input.request.tid === undefined).length;
          let n = numbered ? await this.store.nextTidNumbers(op, numbered, tx) : 0;
          const tidOf = new Map(fresh.map((b) => [b.i, b.input.request.tid ?? tidFor(op, b.face.serviceDate, n++)]));
          // A generated TID someone already holds (imported, given explicitly) is not claimed: issue() numbers it again.
          const claimed = await this.store.claimNewTids(op, serial, fresh.map((b) => ({ tid: tidOf.get(b.i)!, requestKey: b.input.requestKey })), tx);
          const go = fresh.filter((b) => claimed.has(tidOf.get(b.i)!));
          if (!go.length) return [];
          if (!this.recordedCards.has(cardKey)) await this.store.recordCard({ serial, suite: card.suite, encryptionCertificate: card.encryptionCertificate, signingCertificate: card.signingCertificate, identity: card.identity }, tx);
          const { record, authority, signing } = await this.tfvAuthority(tx);
          const billSigner = signing ?? (await this.currentSigner(tx));
          // Every row's TF_V and then its bill signed at once, off this thread (RSA: node:crypto's thread pool, on the
          // machine's other cores while this thread seals and encodes); SM9 signs here, one after the other.
          const made = await Promise.all(
            go.map(async (b) => {
              // A numbered TID has the form createTicket checks (tidFor); the face is checked again where it is signed.
              const face: TicketFace = { ...b.face, tid: tidOf.get(b.i)! };
              const signed = await authority.signAsync(face, b.input.card);
              const sealed = authority.seal(signed, b.input.card);
              const ticket: TicketRecord = { operator: op, tid: face.tid, cardSerial: serial, sellerId: b.input.sellerId, keyId: record.keyId, face: signed.faceEncoded, verificationCode: signed.verificationCodeEncoded, sealed, serviceDate: face.serviceDate, fare: face.fare, currency: face.currency, issuedAt: new Date(face.issuedAt * 1000), status: 'sealed', issuance: 1 };
              const bill = await this.billRecordAsync('sale', ticket, face, b.input.sellerId, billSigner);
              return { i: b.i, face, ticket, bill };
            }),
          );
          const tickets = await this.store.insertNewTickets(made.map((m) => m.ticket), tx);
          await this.store.insertBills(made.map((m) => m.bill), tx);
          return made.map((m, k) => ({ i: m.i, outcome: { status: 'new' as const, ticket: tickets[k], face: m.face, bill: m.bill } }));
        });
        if (done.length) this.recordedCards.add(cardKey);
        for (const d of done) results[d.i] = { outcome: d.outcome };
      } catch (e) {
        // A concurrent issuer took a TID or key between the claim and the insert (unique violation), or the database
        // gave up on the transaction: nothing of the chunk was written, every request goes one by one with its own
        // answer. Anything else (a bug, a dead connection) is not hidden behind the slow path.
        if (!(e instanceof StoreConflictError) && !(e instanceof DatabaseError && (e.code === '23505' || e.code === '40001' || e.code === '40P01'))) throw e;
      }
    }
    for (const [i, input] of inputs.entries()) {
      if (results[i]) continue;
      try {
        results[i] = { outcome: await this.issue(input) };
      } catch (e) {
        results[i] = { error: e as Error };
      }
    }
    return results;
  }

  /**
   * Inside the issuing transaction: the ticket `tid` (returned, locked) may be replaced (it is sealed, loaded, or
   * deleted without a loaded replacement); a replacement of it issued before and never loaded is cancelled and refunded.
   */
  private async replaceable(tid: string, tx: Queryable): Promise<TicketRecord> {
    const op = this.operator;
    const old = await this.store.lockTicket(op, tid, tx);
    if (!old) throw new NotFoundError(`no ticket ${tid} to replace`);
    if (old.status === 'cancelled') throw new StoreConflictError(`ticket ${tid} is cancelled: it cannot be replaced`, 'not_replaceable');
    if (!old.replacedBy) return old;
    const previous = await this.store.lockTicket(op, old.replacedBy, tx);
    if (previous && previous.status !== 'sealed' && previous.status !== 'cancelled') {
      throw new StoreConflictError(`ticket ${tid} was already replaced by ${previous.tid}, which is ${previous.status}: rebook ${previous.tid} instead`, 'already_replaced');
    }
    if (previous && (await this.store.cancelSealed(op, previous.tid, tx))) await this.refundOnce(previous, tx);
    return old;
  }

  /** A ticket issued before handed back to a rebooking only when it is the replacement of that same ticket. */
  private async sameReplacement(existing: IssueOutcome, replaces: string | undefined, tx: Queryable): Promise<IssueOutcome> {
    if (replaces === undefined) return existing;
    const old = await this.store.ticket(this.operator, replaces, tx);
    if (old?.replacedBy === existing.ticket.tid) return existing;
    throw new StoreConflictError(`TID ${existing.ticket.tid} was already issued, not as the replacement of ${replaces}: give the replacement a new tid`, 'tid_taken');
  }

  /**
   * A refund bill for a sold ticket whose issuance has none yet: revenue per seller counts each issuance sold and not
   * refunded once. Only the bills of the ticket's current issuance count (an earlier issuance of its TID, withdrawn from
   * a full card, has its own sale and refund).
   */
  private async refundOnce(t: TicketRecord, tx: Queryable): Promise<void> {
    const bills = await this.store.billsOf(t, tx);
    if (bills.some((b) => b.kind === 'sale') && !bills.some((b) => b.kind === 'refund')) await this.bill('refund', t, decodeTicketFace(t.face), t.sellerId, tx);
  }

  /** The stored ticket for `tid` when it may be handed out again to `serial`; undefined when it must be issued. */
  private async existing(tid: string, serial: string, tx: Queryable, holder?: HolderRecord): Promise<IssueOutcome | undefined> {
    const t = await this.store.ticket(this.operator, tid, tx);
    if (!t || t.status === 'cancelled') return undefined;
    if (t.cardSerial !== serial) throw new StoreConflictError(`TID ${tid} was already issued to card ${t.cardSerial}: give this ticket a new tid`, 'tid_taken');
    // The same request again must name the same holder (or none): never hand one person's ticket to another.
    const realName = (await this.store.holders.ticket(this.operator, tid, tx)) !== undefined;
    if (realName !== Boolean(holder)) throw new StoreConflictError(`ticket ${tid} was issued ${realName ? 'with' : 'without'} a holder record: this request ${holder ? 'has' : 'has none'}`, 'request_mismatch');
    if (holder && (await this.realName.sameHolder(this.operator, tid, holder, tx)) === false) throw new StoreConflictError(`ticket ${tid} was issued to another holder: this request cannot take it`, 'request_mismatch');
    const bills = await this.store.billsOf(t, tx);
    return { status: 'existing', ticket: t, face: decodeTicketFace(t.face), bill: bills.find((b) => b.kind === 'sale') };
  }

  private async bill(kind: 'sale' | 'refund', t: TicketRecord, face: TicketFace, sellerId: string | undefined, q: Queryable, current?: { record: AuthorityKeyRecord; signer: Signer }): Promise<BillRecord> {
    const rec = this.billRecord(kind, t, face, sellerId, current ?? (await this.currentSigner(q)));
    await this.store.insertBill(rec, q);
    return rec;
  }

  /** A signed bill for the ticket, not yet stored. */
  private billRecord(kind: 'sale' | 'refund', t: TicketRecord, face: TicketFace, sellerId: string | undefined, { record, signer }: { record: AuthorityKeyRecord; signer: Signer }): BillRecord {
    const fields = this.billFields(kind, t, face, sellerId);
    return this.billRow(kind, t, sellerId, record, signBill(signer, fields));
  }

  /** billRecord(), the signature computed off this thread where the key allows (a batch chunk's bills). */
  private async billRecordAsync(kind: 'sale' | 'refund', t: TicketRecord, face: TicketFace, sellerId: string | undefined, { record, signer }: { record: AuthorityKeyRecord; signer: Signer }): Promise<BillRecord> {
    const fields = this.billFields(kind, t, face, sellerId);
    return this.billRow(kind, t, sellerId, record, await signBillAsync(signer, fields));
  }

  private billFields(kind: 'sale' | 'refund', t: TicketRecord, face: TicketFace, sellerId: string | undefined): Parameters<typeof signBill>[1] {
    const item: BillItem = { serviceDate: formatServiceDate(face.serviceDate) };
    if (face.train) item.service = face.train;
    if (face.origin) item.origin = face.origin;
    if (face.destination) item.destination = face.destination;
    if (face.travelClass) item.class = face.travelClass;
    if (face.coach) item.coach = face.coach;
    if (face.seat) item.seat = face.seat;
    return {
      billId: hex(new Uint8Array(randomBytes(16))),
      kind,
      operator: t.operator,
      tid: t.tid,
      faceDigest: faceDigest(t.face),
      card: t.cardSerial,
      seller: sellerId ?? '(operator)',
      price: face.fare ?? 0,
      currency: face.currency ?? 'XXX',
      time: this.clock(),
      item,
    };
  }

  private billRow(kind: 'sale' | 'refund', t: TicketRecord, sellerId: string | undefined, record: AuthorityKeyRecord, { bill, document }: ReturnType<typeof signBill>): BillRecord {
    return { billId: bill.billId, operator: t.operator, tid: t.tid, kind, sellerId, cardSerial: t.cardSerial, price: bill.price, currency: bill.currency, soldAt: new Date(bill.time * 1000), keyId: record.keyId, document, issuance: t.issuance };
  }

  /**
   * Sell a metro pass (kind metro, priced per trip): no origin or destination, valid at any station from the
   * first day for `days` days. Sold at price 0: each trip is priced by the fare table and charged to the seller.
   */
  async issuePass(input: { card: CardCredentials; sellerId?: string; requestKey?: string; firstDay: number; days: number; maxEntries?: number; passenger?: string }): Promise<IssueOutcome> {
    if (!Number.isInteger(input.days) || input.days < 1 || input.days > 366) throw new InvalidInputError('a pass is valid 1..366 days');
    const from = Date.parse(`${formatServiceDate(input.firstDay)}T00:00:00Z`) / 1000;
    const currency = (await this.store.db.query<{ currency: string }>('SELECT currency FROM fare_tables WHERE operator = $1 ORDER BY table_id DESC LIMIT 1', [this.operator])).rows[0]?.currency ?? 'XXX';
    return this.issue({
      request: { serviceDate: input.firstDay, kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: input.maxEntries ?? 255, validFrom: from, validUntil: from + input.days * 86400 - 1, fare: 0, currency, ...(input.passenger ? { passenger: input.passenger } : {}) },
      card: input.card,
      sellerId: input.sellerId,
      requestKey: input.requestKey,
    });
  }

  /** The card took the ticket (LOAD answered, or ALREADY_EXISTS on a re-run). */
  async markLoaded(tid: string, sequenceNumber?: number): Promise<boolean> {
    return this.store.markLoaded(this.operator, tid, sequenceNumber);
  }

  /** The card took these tickets (a batch's chunk): one statement for all. Returns the TIDs marked. */
  async markLoadedMany(loaded: { tid: string; sequenceNumber?: number }[]): Promise<string[]> {
    return this.store.markLoadedMany(this.operator, loaded);
  }

  /** The card refused the ticket for good (full): cancel it, free its seat, release its TID. */
  async releaseUnloaded(tid: string): Promise<void> {
    await this.store.releaseUnloaded(this.operator, tid);
  }

  /**
   * Tickets sealed for a card that never got them (it was full, or the batch stopped before their LOAD): cancelled,
   * seat, TID and request key released, the sale refunded, in one transaction. The rows can then go to another card
   * (a new sale there); sales net to one sale per ticket a card holds.
   */
  async withdrawUnloaded(tids: string[]): Promise<void> {
    if (!tids.length) return;
    await this.store.transaction(async (tx) => {
      for (const tid of tids) {
        if (!(await this.store.cancelSealed(this.operator, tid, tx))) continue;
        const t = await this.store.ticket(this.operator, tid, tx);
        if (t) await this.refundOnce(t, tx);
      }
    });
  }

  /**
   * Check a card receipt (pki: the card's signature; sym: the MAC through the master key and the logged
   * transaction) and store it as received. Throws CryptoError when it does not verify.
   */
  async recordReceipt(evidence: ReceiptEvidence, source: string, q?: Queryable): Promise<CheckedReceipt> {
    const checked = await checkReceipt(evidence, { cardTrust: this.cardTrust, masterKeys: this.keys.masterKeys(), card: (s) => this.store.card(s, q), operator: this.operator, ticket: (op, tid) => this.store.ticket(op, tid, q) });
    await this.store.recordReceipt(
      {
        cardSerial: checked.cardSerial,
        operator: checked.operator ?? this.operator,
        tid: checked.tid,
        kind: checked.deletion ? 'deletion' : 'usage',
        event: checked.event,
        counter: checked.counter,
        mode: checked.mode,
        encoded: evidence.encoded,
        transaction: checked.transactionJson,
        source,
      },
      q,
    );
    if (!checked.deletion) {
      // A real-name ticket used up (exited, no entry left) loses its holder record now.
      const op = checked.operator ?? this.operator;
      const t = await this.store.ticket(op, checked.tid, q);
      if (t) await this.realName.usageRecorded(op, checked.tid, decodeTicketFace(t.face), parseReceipt(evidence.encoded).usage, q);
    }
    return checked;
  }

  /** A card deleted a ticket (CLI, gate, rebooking): store its verified deletion receipt and close the ticket, freeing its seat. */
  async recordDeletion(evidence: ReceiptEvidence, source: string): Promise<CheckedReceipt> {
    const checked = await this.recordReceipt(evidence, source);
    if (!checked.deletion) throw new CryptoError('not a deletion receipt (its event is not DELETED)');
    const op = checked.operator ?? this.operator;
    await this.store.transaction(async (tx) => {
      await this.store.closeTicket(op, checked.tid, 'deleted', undefined, tx);
      // A rebooked ticket is refunded once its deletion is proven (its replacement was billed when sealed).
      const t = op === this.operator ? await this.store.ticket(op, checked.tid, tx) : undefined;
      if (t?.replacedBy && t.status === 'deleted') await this.refundOnce(t, tx);
    });
    return checked;
  }

  /**
   * Cancel a ticket: a sealed one (never loaded) directly; a loaded one only with the card's deletion receipt
   * for it. Frees the seat and issues a refund bill. Idempotent: a closed ticket answers its refund bill.
   */
  async cancel(tid: string, options: { deletion?: ReceiptEvidence; sellerId?: string; source: string }): Promise<{ ticket: TicketRecord; refund?: BillRecord; alreadyClosed: boolean }> {
    const op = this.operator;
    const t = await this.store.ticket(op, tid);
    if (!t || (options.sellerId !== undefined && t.sellerId !== options.sellerId)) throw new NotFoundError(`no ticket ${tid}`);
    if (t.status === 'loaded') {
      if (!options.deletion) throw new StoreConflictError(`ticket ${tid} is on card ${t.cardSerial}: cancel it with the card's deletion receipt`, 'needs_deletion_receipt');
      const checked = await this.recordReceipt(options.deletion, options.source);
      if (!checked.deletion || checked.tid !== tid || checked.cardSerial !== t.cardSerial) throw new CryptoError(`the receipt is not the deletion of ${tid} on card ${t.cardSerial}`);
    }
    return this.store.transaction(async (tx) => {
      const closed = await this.store.closeTicket(op, tid, t.status === 'loaded' ? 'deleted' : 'cancelled', undefined, tx);
      const ticket = (await this.store.ticket(op, tid, tx))!;
      const bills = await this.store.billsOf(ticket, tx);
      const refund = bills.find((b) => b.kind === 'refund');
      if (!closed || refund) return { ticket, refund, alreadyClosed: !closed };
      return { ticket, refund: await this.bill('refund', ticket, decodeTicketFace(ticket.face), ticket.sellerId, tx), alreadyClosed: false };
    });
  }

  /**
   * Rotate the authority's signing key: the root key certifies `next` (A4) for [now, now + validDays], the
   * previous signing key is retired now and stays in the history. `next` is already in the key store.
   */
  async rotate(next: { signer: Signer; keyName: string; identity?: string }, options: { validDays: number; scopes?: string[] }): Promise<AuthorityKeyRecord> {
    const root = await this.ensureRootKey();
    if (next.signer.suite !== root.suite) throw new InvalidInputError(`new key is ${next.signer.suite}, the root key ${root.suite}`);
    if (!Number.isInteger(options.validDays) || options.validDays < 1 || options.validDays > 3660) throw new InvalidInputError('validity is 1..3660 days');
    const previous = await this.store.currentSigningKey(this.operator);
    const now = this.clock();
    const cert = signKeyCertificate(this.signerFor(root), { publicKey: next.signer.publicKey, scopes: options.scopes ?? [this.operator], validFrom: now, validUntil: now + options.validDays * 86400 });
    const record: AuthorityKeyRecord = {
      keyId: hex(cert.keyId),
      operator: this.operator,
      suite: root.suite,
      role: 'signing',
      publicKey: next.signer.publicKey,
      identity: next.identity,
      certificate: cert.encoded,
      certifiedBy: root.keyId,
      keyName: next.keyName,
      validFrom: new Date(now * 1000),
      validUntil: new Date(cert.validUntil * 1000),
    };
    await this.store.rotateSigningKey(record, previous?.role === 'signing' ? previous.keyId : undefined);
    this.signers.set(record.keyId, next.signer);
    return (await this.store.authorityKey(record.keyId))!;
  }
}
