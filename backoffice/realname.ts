// Real-name tickets in the back office (docs/realname.md): holder records sealed at rest under a data key of
// their own (wrapped by the holder master key), read only by permitted checking terminals with a signed request
// and an unused TOTP code, a limited number of times, answered sealed to the terminal's key, destroyed for good.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { concat, constantTimeEqual, fromHex, fromUtf8, hex, utf8 } from '../sdk/bytes.js';
import { CryptoError, EticketError, InvalidInputError } from '../sdk/errors.js';
import { sameCode, totpForStep, TOTP_SECRET_LENGTH, checkTotpParameters, type TotpParameters } from '../sdk/crypto/totp.js';
import { canonicalJson } from '../sdk/roles/bill.js';
import { canonicalHolder, HOLDER_ANSWER_FORMAT, holderBinding, holderJson, holderRecord, newHolderRef, newHolderSalt, sealHolderAnswer, type HolderRecord } from '../sdk/roles/realname.js';
import { USAGE_STATE } from '../sdk/spec.js';
import type { TicketFace, UsageRecord } from '../sdk/ticket.js';
import type { Queryable } from './store/database.js';
import type { AccessLogEntry, DestroyReason, HolderRecordRow, RealNameTicketRecord, TerminalTotpRow } from './store/holders.js';
import type { ClientRecord, Store } from './store/store.js';

/** The holder master keys: the current one seals new data keys; older ones open what a rotation has not re-sealed yet. */
export interface HolderVault {
  current(): { id: string; key: Uint8Array };
  /** A master key by id, or undefined when this process does not hold it (destroyed, or not copied here). */
  key(id: string): Uint8Array | undefined;
}

export const HOLDER_MASTER_KEY_LENGTH = 32;

/** Id of a holder master key: the first 8 bytes of SHA-256("ETKT HOLDER MK 1" ‖ key), hex. */
export function holderMasterKeyId(key: Uint8Array): string {
  return hex(new Uint8Array(createHash('sha256').update(concat(utf8('ETKT HOLDER MK 1'), key)).digest().subarray(0, 8)));
}

/** Why a holder-data request was refused (the access log's reason; the HTTP error code where it is shown). */
export type HolderRefusal =
  | 'no_header'
  | 'malformed_header'
  | 'unknown_client'
  | 'revoked_client'
  | 'stale_timestamp'
  | 'bad_signature'
  | 'replayed_nonce'
  | 'bad_request'
  | 'not_a_checking_terminal'
  | 'no_realname_credentials'
  | 'totp_clock'
  | 'totp_invalid'
  | 'totp_reused'
  | 'not_found'
  | 'wrong_reference'
  | 'not_permitted'
  | 'expired'
  | 'reads_exhausted'
  | 'ticket_closed'
  | 'record_unreadable'
  | 'no_holder_key';

/** HTTP status and the error code the terminal sees for each refusal (authentication failures all look alike). */
export const HOLDER_REFUSALS: Record<HolderRefusal, { status: number; error: string; message: string }> = {
  no_header: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  malformed_header: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  unknown_client: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  revoked_client: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  stale_timestamp: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  bad_signature: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  replayed_nonce: { status: 401, error: 'unauthorized', message: 'authentication failed' },
  bad_request: { status: 400, error: 'bad_request', message: 'the request does not match its schema' },
  not_a_checking_terminal: { status: 403, error: 'not_a_checking_terminal', message: 'only gates and inspectors may read holder data' },
  no_realname_credentials: { status: 403, error: 'no_realname_credentials', message: 'this terminal has no TOTP secret or encryption key: register it again' },
  totp_clock: { status: 403, error: 'totp_clock', message: "the TOTP time is outside the service's window: check the terminal's clock" },
  totp_invalid: { status: 403, error: 'totp_invalid', message: 'wrong TOTP code' },
  totp_reused: { status: 403, error: 'totp_reused', message: 'this TOTP code was used before: wait for the next one' },
  not_found: { status: 404, error: 'not_found', message: 'no real-name record for this ticket' },
  wrong_reference: { status: 404, error: 'not_found', message: 'no real-name record for this ticket' },
  not_permitted: { status: 403, error: 'not_permitted', message: 'this terminal may not check this ticket' },
  expired: { status: 410, error: 'expired', message: 'the ticket has expired: its holder data is destroyed' },
  reads_exhausted: { status: 410, error: 'reads_exhausted', message: 'the holder data of this ticket was read as often as allowed and is destroyed' },
  ticket_closed: { status: 410, error: 'ticket_closed', message: 'the ticket was deleted, cancelled or used up: its holder data is destroyed' },
  record_unreadable: { status: 409, error: 'record_unreadable', message: 'the holder record does not decrypt: it was altered in the store' },
  no_holder_key: { status: 503, error: 'no_holder_key', message: 'this service process does not hold the master key of this record' },
};

/** A holder-data request refused; `reason` is what the access log says. */
export class HolderRefusedError extends EticketError {
  readonly status: number;
  readonly error: string;
  constructor(readonly reason: HolderRefusal, detail?: string) {
    const r = HOLDER_REFUSALS[reason];
    super(detail ? `${r.message}: ${detail}` : r.message);
    this.status = r.status;
    this.error = r.error;
  }
}

export interface HolderReadRequest {
  operator: string;
  tid: string;
  holderRef: Uint8Array;
  totp: { code: string; time: number };
  /** 16 random bytes of the terminal's: the answer carries them back. */
  challenge: Uint8Array;
}

export interface HolderReadAnswer {
  tid: string;
  /** Envelope B1 to the terminal's encryption key (sdk/roles/realname.ts openHolderAnswer). */
  sealed: Uint8Array;
  readsLeft: number;
  expiresAt: Date;
}

export interface RealNameOptions {
  /** Reads per ticket when realname_read_limits has no row for its kind nor for kind 0 (default 3). */
  defaultReads?: number;
  /** TOTP steps accepted either side of the service's own (default 1: RFC 6238 §5.2's recommendation). */
  totpWindow?: number;
}

// ------------------------------------------------------------------------------------- sealing at rest --

function gcmSeal(key: Uint8Array, plaintext: Uint8Array, aad: string): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return new Uint8Array(Buffer.concat([iv, c.getAuthTag(), ct]));
}

function gcmOpen(key: Uint8Array, blob: Uint8Array, aad: string): Uint8Array {
  if (blob.length < 28) throw new CryptoError('sealed value too short');
  try {
    const d = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
    d.setAAD(Buffer.from(aad, 'utf8'));
    d.setAuthTag(blob.subarray(12, 28));
    return new Uint8Array(Buffer.concat([d.update(blob.subarray(28)), d.final()]));
  } catch (e) {
    throw new CryptoError('sealed value does not decrypt (altered, moved to another row, or another key)', { cause: e });
  }
}

// Each sealed value is bound to where it belongs: a record moved to another ticket's row does not open there.
const recordAad = (operator: string, tid: string, ref: Uint8Array) => `ETKT HOLDER RECORD 1\n${operator}\n${tid}\n${hex(ref)}`;
const dataKeyAad = (operator: string, tid: string, masterKeyId: string) => `ETKT HOLDER DEK 1\n${operator}\n${tid}\n${masterKeyId}`;
const totpAad = (clientId: string, masterKeyId: string) => `ETKT TOTP SECRET 1\n${clientId}\n${masterKeyId}`;

/** What one sealed holder record holds: the binding salt and the record. */
interface RecordPlain {
  salt: Uint8Array;
  holder: HolderRecord;
}

export class RealNameService {
  private readonly defaultReads: number;
  private readonly totpWindow: number;

  constructor(
    private readonly store: Store,
    private readonly vaultOf: () => HolderVault | undefined,
    /** Epoch seconds. */
    private readonly clock: () => number,
    options: RealNameOptions = {},
  ) {
    this.defaultReads = options.defaultReads ?? 3;
    this.totpWindow = options.totpWindow ?? 1;
    if (!Number.isInteger(this.defaultReads) || this.defaultReads < 1) throw new InvalidInputError('default reads must be a positive integer');
  }

  private vault(): HolderVault {
    const v = this.vaultOf();
    if (!v) throw new InvalidInputError('real-name tickets need the holder master key: this working directory has none (`eticket init --add-holder-key`)');
    return v;
  }

  // ------------------------------------------------------------------------------------------ issuance --

  /** A fresh reference and salt for a new real-name ticket, and the face fields they give. */
  prepare(operator: string, tid: string, holder: HolderRecord): { holderRef: Uint8Array; salt: Uint8Array; binding: Uint8Array } {
    const holderRef = newHolderRef();
    const salt = newHolderSalt();
    return { holderRef, salt, binding: holderBinding(salt, operator, tid, holder) };
  }

  /** Store the sealed record with its ticket, inside the issuing transaction. */
  async recordIssued(face: TicketFace, salt: Uint8Array, holder: HolderRecord, tx: Queryable): Promise<void> {
    if (!face.holderRef || !face.holderBinding) throw new InvalidInputError('not a real-name face');
    const readsMax = (await this.store.holders.readLimit(face.kind, tx)) ?? this.defaultReads;
    const { id, key } = this.vault().current();
    const dataKey = new Uint8Array(randomBytes(32));
    const plain = utf8(canonicalJson({ salt: hex(salt), holder: holderJson(holder) }));
    const record: Omit<HolderRecordRow, 'issuance'> = {
      operator: face.operator,
      tid: face.tid,
      masterKeyId: id,
      wrappedKey: gcmSeal(key, dataKey, dataKeyAad(face.operator, face.tid, id)),
      sealed: gcmSeal(dataKey, plain, recordAad(face.operator, face.tid, face.holderRef)),
    };
    dataKey.fill(0);
    await this.store.holders.insert(
      { operator: face.operator, tid: face.tid, holderRef: face.holderRef, origin: face.origin, destination: face.destination, kind: face.kind, expiresAt: new Date(face.validUntil * 1000), readsMax },
      record,
      tx,
    );
  }

  /**
   * The same request (key or TID) again: does it name the same holder? undefined when the record is gone.
   * A batch line re-run with another person must not silently get the first person's ticket.
   */
  async sameHolder(operator: string, tid: string, holder: HolderRecord, tx: Queryable): Promise<boolean | undefined> {
    const t = await this.store.holders.ticket(operator, tid, tx);
    if (!t) return false;
    const row = await this.store.holders.record(operator, tid, tx);
    if (!row) return undefined;
    const plain = this.openRecord(row, t.holderRef);
    return constantTimeEqual(canonicalHolder(plain.holder), canonicalHolder(holder));
  }

  private openRecord(row: HolderRecordRow, holderRef: Uint8Array): RecordPlain {
    const key = this.vault().key(row.masterKeyId);
    if (!key) throw new HolderRefusedError('no_holder_key', `master key ${row.masterKeyId} (copy keys/ from where \`eticket realname rotate-key\` ran)`);
    let dataKey: Uint8Array | undefined;
    try {
      dataKey = gcmOpen(key, row.wrappedKey, dataKeyAad(row.operator, row.tid, row.masterKeyId));
      const j = JSON.parse(fromUtf8(gcmOpen(dataKey, row.sealed, recordAad(row.operator, row.tid, holderRef)))) as { salt: string; holder: unknown };
      return { salt: fromHex(j.salt), holder: holderRecord(j.holder as never) };
    } catch (e) {
      throw new HolderRefusedError('record_unreadable', (e as Error).message);
    } finally {
      dataKey?.fill(0);
    }
  }

  // --------------------------------------------------------------------------------------- terminals --

  /** Seal a terminal's TOTP secret under the current master key (stored with `eticket terminal add`). */
  sealTotp(clientId: string, secret: Uint8Array, p: TotpParameters): TerminalTotpRow {
    checkTotpParameters(p);
    if (secret.length < 16) throw new InvalidInputError('a TOTP secret is at least 16 bytes');
    const { id, key } = this.vault().current();
    return { clientId, algorithm: p.algorithm, digits: p.digits, period: p.period, masterKeyId: id, secretSealed: gcmSeal(key, secret, totpAad(clientId, id)) };
  }

  /**
   * Register a checking terminal (gate or inspector) for real-name reads: the client with its encryption key,
   * and its TOTP secret sealed under the master key, in one transaction.
   */
  async registerTerminal(client: Omit<ClientRecord, 'status' | 'createdAt'>, totp: { secret: Uint8Array; parameters: TotpParameters }): Promise<void> {
    if (client.role !== 'terminal' || (client.kind !== 'gate' && client.kind !== 'inspector')) throw new InvalidInputError('only gates and inspectors read holder data');
    if (!client.encryptionKey) throw new InvalidInputError('a checking terminal needs an encryption key for holder answers');
    const row = this.sealTotp(client.clientId, totp.secret, totp.parameters);
    await this.store.addClient(client, (tx) => this.store.holders.setTotp(row, tx));
  }

  /** A new random secret of the length RFC 6238 recommends for the algorithm. */
  static newTotpSecret(p: TotpParameters): Uint8Array {
    return new Uint8Array(randomBytes(TOTP_SECRET_LENGTH[p.algorithm]));
  }

  private totpSecret(row: TerminalTotpRow): Uint8Array {
    const key = this.vault().key(row.masterKeyId);
    if (!key) throw new HolderRefusedError('no_holder_key', `master key ${row.masterKeyId}`);
    try {
      return gcmOpen(key, row.secretSealed, totpAad(row.clientId, row.masterKeyId));
    } catch (e) {
      throw new HolderRefusedError('record_unreadable', `TOTP secret of ${row.clientId}: ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------------------------------- reading --

  /** Log a refusal that happened before the request reached `read` (authentication, malformed request). */
  async logRefusal(entry: Omit<AccessLogEntry, 'outcome'>): Promise<void> {
    await this.store.holders.log({ ...entry, outcome: 'refused' });
  }

  /**
   * One holder-data read by an authenticated client. Checks, in order: a checking terminal with real-name
   * credentials; the TOTP (window, code, not used before); the ticket and its reference; the permission table;
   * expiry; reads left. Every outcome is logged; a refusal throws HolderRefusedError after its log line.
   */
  async read(client: ClientRecord, req: HolderReadRequest): Promise<HolderReadAnswer> {
    const base = { clientId: client.clientId, operator: req.operator, tid: req.tid };
    // The issuance the request's reference names, once the ticket is looked up: what a refusal is logged under.
    const named: { issuance?: number } = {};
    try {
      const answer = await this.readChecked(client, req, named);
      return answer;
    } catch (e) {
      if (e instanceof HolderRefusedError) await this.store.holders.log({ ...base, issuance: named.issuance, outcome: 'refused', reason: e.reason });
      throw e;
    }
  }

  private async readChecked(client: ClientRecord, req: HolderReadRequest, named: { issuance?: number }): Promise<HolderReadAnswer> {
    if (client.role !== 'terminal' || (client.kind !== 'gate' && client.kind !== 'inspector')) throw new HolderRefusedError('not_a_checking_terminal');
    const totpRow = await this.store.holders.totp(client.clientId);
    if (!totpRow || !client.encryptionKey) throw new HolderRefusedError('no_realname_credentials');
    await this.checkTotp(totpRow, req.totp);

    const now = this.clock();
    // Expiry first, outside the read: a record found expired is destroyed whoever asks, and stays destroyed.
    const t0 = await this.store.holders.ticket(req.operator, req.tid);
    if (!t0) throw new HolderRefusedError('not_found');
    if (!constantTimeEqual(t0.holderRef, req.holderRef)) {
      // An earlier issuance's reference (the TID withdrawn from a full card and issued again): logged under that one.
      named.issuance = (await this.store.holders.issuances(req.operator, req.tid)).find((r) => constantTimeEqual(r.holderRef, req.holderRef))?.issuance;
      throw new HolderRefusedError('wrong_reference');
    }
    named.issuance = t0.issuance;
    if (!(await this.store.holders.permitted(client.clientId, t0))) throw new HolderRefusedError('not_permitted');
    if (t0.state === 'held' && now * 1000 >= t0.expiresAt.getTime()) {
      await this.store.transaction((tx) => this.store.holders.destroy(req.operator, req.tid, 'expired', new Date(now * 1000), tx, t0.issuance));
    }

    return this.store.transaction(async (tx) => {
      // The row lock makes concurrent reads of one ticket (on any number of processes) count one by one.
      const t = await this.store.holders.ticket(req.operator, req.tid, tx, true);
      // The TID withdrawn and issued again meanwhile: the reference named the issuance before.
      if (!t || !constantTimeEqual(t.holderRef, req.holderRef)) throw new HolderRefusedError('wrong_reference');
      if (t.state === 'destroyed') throw new HolderRefusedError(refusalFor(t.destroyedReason));
      const row = await this.store.holders.record(req.operator, req.tid, tx);
      if (!row || row.issuance !== t.issuance) throw new HolderRefusedError('record_unreadable', 'the record row is missing');
      const plain = this.openRecord(row, t.holderRef);
      const used = await this.store.holders.countRead(req.operator, req.tid, t.issuance, tx);
      if (used === undefined) throw new HolderRefusedError('reads_exhausted');
      const readsLeft = t.readsMax - used;
      // The last permitted read destroys the record in the same transaction: nobody can read it again.
      if (readsLeft === 0) await this.store.holders.destroy(req.operator, req.tid, 'reads_exhausted', new Date(now * 1000), tx, t.issuance);
      const sealed = sealHolderAnswer(client.suite, client.encryptionKey!, {
        format: HOLDER_ANSWER_FORMAT,
        operator: t.operator,
        tid: t.tid,
        holderRef: hex(t.holderRef),
        challenge: hex(req.challenge),
        terminal: client.clientId,
        salt: hex(plain.salt),
        holder: holderJson(plain.holder),
        readsLeft,
        expiresAt: Math.floor(t.expiresAt.getTime() / 1000),
      });
      await this.store.holders.log({ clientId: client.clientId, operator: t.operator, tid: t.tid, issuance: t.issuance, outcome: 'read', reason: readsLeft === 0 ? 'read_last' : 'read', readsLeft }, tx);
      return { tid: t.tid, sealed, readsLeft, expiresAt: t.expiresAt };
    });
  }

  /** RFC 6238 §5.2: the code of the step the terminal names, within `totpWindow` steps of ours, once. */
  private async checkTotp(row: TerminalTotpRow, t: { code: string; time: number }): Promise<void> {
    const p: TotpParameters = { algorithm: row.algorithm, digits: row.digits, period: row.period };
    const now = this.clock();
    if (!Number.isSafeInteger(t.time) || t.time < 0) throw new HolderRefusedError('totp_clock');
    const step = Math.floor(t.time / p.period);
    const ours = Math.floor(now / p.period);
    if (Math.abs(step - ours) > this.totpWindow) throw new HolderRefusedError('totp_clock', `${t.time - now} s from the service's clock`);
    const secret = this.totpSecret(row);
    const ok = typeof t.code === 'string' && sameCode(totpForStep(secret, step, p), t.code);
    secret.fill(0);
    if (!ok) throw new HolderRefusedError('totp_invalid');
    if (!(await this.store.holders.useTotpStep(row.clientId, step, ours - this.totpWindow - 1))) throw new HolderRefusedError('totp_reused');
  }

  // ------------------------------------------------------------------------------------- destruction --

  /** A usage receipt says the ticket is used up (exited with no entry left): destroy its holder record. */
  async usageRecorded(operator: string, tid: string, face: TicketFace, usage: UsageRecord | undefined, q?: Queryable): Promise<boolean> {
    if (!face.holderRef || !usage || usage.state !== USAGE_STATE.EXITED || usage.entries < (face.maxEntries ?? 1)) return false;
    const at = new Date(this.clock() * 1000);
    return q ? this.store.holders.destroy(operator, tid, 'used_up', at, q) : this.store.transaction((tx) => this.store.holders.destroy(operator, tid, 'used_up', at, tx));
  }

  /**
   * The sweep: destroy every record of an expired ticket, then rewrite the holder table if anything was destroyed
   * since its last rewrite (VACUUM FULL: the deleted rows' bytes leave its files). `eticket serve` runs it every
   * few minutes; `eticket realname sweep` on demand.
   */
  async sweep(): Promise<{ destroyed: { operator: string; tid: string }[]; vacuumed: boolean }> {
    const destroyed = await this.store.holders.destroyExpired(new Date(this.clock() * 1000));
    const vacuumed = await this.store.holders.vacuumIfDue();
    return { destroyed, vacuumed };
  }

  /**
   * After a new master key became current: re-seal every data key and TOTP secret still under an older one.
   * Returns how many were re-sealed and the master key ids still in use afterwards (any other key's file can go:
   * that is what makes old copies in WAL and backups undecryptable).
   */
  async rewrapAll(batch = 500): Promise<{ records: number; totps: number; unreadable: { operator: string; tid: string }[]; inUse: string[] }> {
    const vault = this.vault();
    const { id: to, key: toKey } = vault.current();
    let records = 0;
    let totps = 0;
    // A row that does not open (altered in the store) is reported, not re-sealed: it keeps its old key id.
    const unreadable: { operator: string; tid: string }[] = [];
    const skip = new Set<string>();
    for (const from of await this.store.holders.masterKeysInUse()) {
      if (from === to) continue;
      const fromKey = vault.key(from);
      if (!fromKey) throw new InvalidInputError(`records are sealed under master key ${from}, which this working directory does not hold`);
      for (;;) {
        const { records: rs, totps: ts } = await this.store.holders.wrappedWith(from, batch + skip.size);
        const todo = rs.filter((r) => !skip.has(`${r.operator}/${r.tid}/${r.issuance}`));
        if (!todo.length && !ts.length) break;
        for (const r of todo) {
          let dataKey: Uint8Array;
          try {
            dataKey = gcmOpen(fromKey, r.wrappedKey, dataKeyAad(r.operator, r.tid, from));
          } catch {
            skip.add(`${r.operator}/${r.tid}/${r.issuance}`);
            unreadable.push({ operator: r.operator, tid: r.tid });
            continue;
          }
          if (await this.store.holders.rewrapRecord(r, from, to, gcmSeal(toKey, dataKey, dataKeyAad(r.operator, r.tid, to)))) records++;
          dataKey.fill(0);
        }
        for (const t of ts) {
          // A TOTP secret that does not open is re-registered by the operator (`eticket terminal add` anew).
          const secret = gcmOpen(fromKey, t.secretSealed, totpAad(t.clientId, from));
          if (await this.store.holders.rewrapTotp(t.clientId, from, to, gcmSeal(toKey, secret, totpAad(t.clientId, to)))) totps++;
          secret.fill(0);
        }
      }
    }
    const inUse = await this.store.holders.masterKeysInUse();
    return { records, totps, unreadable, inUse };
  }

  /** The ticket's real-name row (nothing private), for status displays. */
  ticket(operator: string, tid: string): Promise<RealNameTicketRecord | undefined> {
    return this.store.holders.ticket(operator, tid);
  }
}

function refusalFor(reason: DestroyReason | undefined): HolderRefusal {
  if (reason === 'expired') return 'expired';
  if (reason === 'reads_exhausted') return 'reads_exhausted';
  return 'ticket_closed';
}
