// Arbitration: verify anything the system signed, long after the fact. A ticket (TF_V, its A4 chain, the card it
// is bound to) or a bill against the authority's key history (which key, valid then?); a card receipt against the
// card's certificate or SM9 identity (pki), or the operator's master key and the logged transaction (sym), and the
// face it names against the issued ticket (protocol version 2). A failure names its reason.

import { X509Certificate } from 'node:crypto';
import { equal, fromHex, hex } from '../sdk/bytes.js';
import { CryptoError, EticketError, InvalidInputError } from '../sdk/errors.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { keyId } from '../sdk/crypto/suite.js';
import { decodeBill, verifyBill, type Bill } from '../sdk/roles/bill.js';
import { verifyKeyCertificate } from '../sdk/roles/key-certificate.js';
import { resolveSigningKey } from '../sdk/roles/key-chain.js';
import { parseReceipt, receiptMessage, type Receipt } from '../sdk/receipt.js';
import { symTransactionFromJson, symTransactionToJson, verifySymReceipt, type OperatorMasterKey, type SymKeyCache, type SymTransaction } from '../sdk/roles/sym-receipts.js';
import type { CardTrust } from '../sdk/roles/trust.js';
import { SUITE, USAGE_EVENT } from '../sdk/spec.js';
import { decodeTicketFace, decodeVerificationCode, faceDigestOf, verificationCodeMessage } from '../sdk/ticket.js';
import type { AuthorityKeyRecord, CardRecord, TicketRecord } from './store/store.js';

export interface ReceiptEvidence {
  /** The B4 object as the card sent it. */
  encoded: Uint8Array;
  /** Sym mode: the transaction the gate logged with it. */
  transaction?: SymTransaction;
  /** Pki mode, RSA: the card's signing certificate, when the store does not know the card. */
  signingCertificate?: Uint8Array;
}

export type Evidence = { kind: 'ticket'; face: Uint8Array; verificationCode: Uint8Array } | { kind: 'bill'; bill: Bill } | ({ kind: 'receipt' } & ReceiptEvidence);

export interface SignerInfo {
  keyId: string;
  /** authority root / signing key, a card's receipt key, or the operator's checking master key (sym). */
  role: 'root' | 'signing' | 'card' | 'master';
  suite?: string;
  validFrom?: string;
  validUntil?: string;
  retiredAt?: string;
  /** Card receipts: the card serial; sym: the operator. */
  subject?: string;
}

export interface Verdict {
  ok: boolean;
  kind: Evidence['kind'];
  /** Why it failed (ok false). */
  reason?: string;
  signer?: SignerInfo;
  /** When it was signed, as the evidence says (epoch seconds; ISO in JSON). */
  signedAt?: string;
  /** Was the signing key valid at that time? */
  validAtTime?: boolean;
  /** What it is about: tid, operator, card, event, counter, price... */
  subject: Record<string, unknown>;
}

export interface CheckedReceipt {
  mode: 'pki' | 'sym';
  cardSerial: string;
  tid: string;
  /** DF20 in hex (protocol version 2 receipts). */
  faceDigest?: string;
  operator?: string;
  event: number;
  counter: number;
  deletion: boolean;
  time?: number;
  signer: SignerInfo;
  transactionJson?: Record<string, string>;
}

const iso = (t: number | Date | undefined) => (t === undefined ? undefined : (t instanceof Date ? t : new Date(t * 1000)).toISOString().replace('.000Z', 'Z'));

function keyInfo(k: AuthorityKeyRecord): SignerInfo {
  return { keyId: k.keyId, role: k.role, suite: k.suite, validFrom: iso(k.validFrom), validUntil: iso(k.validUntil), retiredAt: iso(k.retiredAt), subject: k.identity };
}

/**
 * Was authority key `k` in force at `t` (inside its window and not yet retired)? Signatures and retirements are
 * stamped in whole seconds: a bill signed in the second its key was retired (the rotation came right after it) is
 * in force; one stamped a second later is not.
 */
export function keyValidAt(k: AuthorityKeyRecord, t: number): boolean {
  const ms = t * 1000;
  return ms >= k.validFrom.getTime() - 60_000 && (k.validUntil === undefined || ms <= k.validUntil.getTime()) && (k.retiredAt === undefined || ms <= k.retiredAt.getTime());
}

/** The history's key `id`, checked: a signing key must carry a certificate that its root key signed. */
function historyKey(history: AuthorityKeyRecord[], id: string): AuthorityKeyRecord {
  const k = history.find((h) => h.keyId === id);
  if (!k) throw new CryptoError(`signed by key ${id}, which is not in the authority's key history`);
  if (!equal(keyId(k.publicKey), fromHex(k.keyId))) throw new CryptoError(`key history entry ${id} does not match its public key`);
  if (k.role === 'signing') {
    const root = history.find((h) => h.keyId === k.certifiedBy && h.role === 'root');
    if (!root || !k.certificate) throw new CryptoError(`signing key ${id} has no certificate from a root key in the history`);
    const cert = verifyKeyCertificate(k.certificate, root);
    if (!equal(cert.publicKey, k.publicKey)) throw new CryptoError(`the certificate of key ${id} certifies another public key`);
  }
  return k;
}

export interface ReceiptContext {
  cardTrust: CardTrust;
  masterKeys: OperatorMasterKey[];
  card: (serial: string) => Promise<CardRecord | undefined>;
  /** The operator whose tickets a pki receipt is looked up among (a sym receipt names its own). */
  operator?: string;
  /** The issued ticket, to check the face a version 2 receipt names (DF20); absent: the face is not checked. */
  ticket?: (operator: string, tid: string) => Promise<TicketRecord | undefined>;
}

/**
 * A version 2 receipt names the face it applies to (DF20): when the store issued that ticket, the digest must be
 * the issued face's, and the face must be bound to the card that signed (or MAC'd) the receipt.
 */
async function checkReceiptFace(ctx: ReceiptContext, operator: string | undefined, tid: string, serial: string, faceDigest: Uint8Array | undefined): Promise<void> {
  if (!faceDigest || !ctx.ticket || !operator) return;
  const t = await ctx.ticket(operator, tid);
  if (!t) return;
  if (!equal(faceDigestOf(t.face), faceDigest)) throw new CryptoError(`the receipt names another face than ticket ${tid} as issued`);
  const face = decodeTicketFace(t.face);
  if (face.card && hex(face.card) !== serial) throw new CryptoError(`ticket ${tid} is bound to card ${hex(face.card)}, the receipt comes from card ${serial}`);
}

/** What a caller checking many receipts may pass along: sym derivations kept, the receipt it parsed from `encoded`. */
export interface CheckReceiptOptions {
  keys?: SymKeyCache;
  receipt?: Receipt;
}

/** Verify a card receipt; throws CryptoError with the reason. */
export async function checkReceipt(e: ReceiptEvidence, ctx: ReceiptContext, options: CheckReceiptOptions = {}): Promise<CheckedReceipt> {
  let receipt: Receipt;
  if (options.receipt && equal(options.receipt.encoded, e.encoded)) receipt = options.receipt;
  else {
    try {
      receipt = parseReceipt(e.encoded);
    } catch (err) {
      throw new CryptoError(`not a card receipt: ${(err as Error).message}`);
    }
  }
  const serial = hex(receipt.cardSerial);
  const deletion = receipt.event === USAGE_EVENT.DELETED;
  if (receipt.mac) {
    if (!e.transaction) throw new CryptoError('a sym receipt (MAC) verifies only with the transaction the gate logged with it');
    const master = ctx.masterKeys.find((m) => m.operator === e.transaction!.operator);
    if (!master) throw new CryptoError(`no checking master key of operator ${e.transaction.operator} here`);
    const v = verifySymReceipt(master, receipt.cardSerial, e.encoded, e.transaction, { keys: options.keys, receipt });
    await checkReceiptFace(ctx, e.transaction.operator, v.tid, serial, receipt.faceDigest);
    return {
      mode: 'sym',
      cardSerial: serial,
      tid: v.tid,
      faceDigest: receipt.faceDigest && hex(receipt.faceDigest),
      operator: e.transaction.operator,
      event: receipt.event,
      counter: receipt.counter,
      deletion,
      time: v.time,
      signer: { keyId: hex(e.transaction.keyId), role: 'master', subject: e.transaction.operator },
      transactionJson: symTransactionToJson(e.transaction),
    };
  }
  const known = await ctx.card(serial);
  const creds = { suite: ctx.cardTrust.suite, serial: receipt.cardSerial, signingCertificate: e.signingCertificate ?? known?.signingCertificate, identity: known?.identity };
  let key: Uint8Array;
  try {
    key = ctx.cardTrust.signingKey(creds);
  } catch (err) {
    throw new CryptoError(`card ${serial}'s receipt key cannot be traced to the trust root: ${(err as Error).message}`);
  }
  if (!getSuite(ctx.cardTrust.suite).verify(key, receiptMessage(receipt), receipt.signature)) {
    throw new CryptoError(`receipt signature does not verify with card ${serial}'s key: forged or altered`);
  }
  await checkReceiptFace(ctx, ctx.operator, receipt.tid, serial, receipt.faceDigest);
  const signer: SignerInfo = { keyId: hex(keyId(key)), role: 'card', suite: ctx.cardTrust.suite, subject: serial };
  if (creds.signingCertificate) {
    const c = new X509Certificate(Buffer.from(creds.signingCertificate));
    signer.validFrom = iso(new Date(c.validFrom));
    signer.validUntil = iso(new Date(c.validTo));
  }
  return { mode: 'pki', cardSerial: serial, tid: receipt.tid, faceDigest: receipt.faceDigest && hex(receipt.faceDigest), event: receipt.event, counter: receipt.counter, deletion, time: receipt.usage?.lastTime || undefined, signer };
}

export interface ArbitrationContext extends ReceiptContext {
  history: AuthorityKeyRecord[];
}

/**
 * The key that signed a TF_V: the history's entry for its key id (a signing key's own certificate checked against
 * its root), or, for a key the history lacks, the A4 the TF_V carries, checked against the history's root keys for
 * the ticket's operator and issue time. A TF_V's A4 must agree with the history when both exist.
 */
function tfvSigner(history: AuthorityKeyRecord[], tfv: ReturnType<typeof decodeVerificationCode>, face: ReturnType<typeof decodeTicketFace>): { publicKey: Uint8Array; record?: AuthorityKeyRecord; info: SignerInfo } {
  const id = hex(tfv.authorityKeyId);
  const roots = history.filter((h) => h.role === 'root').map((h) => ({ keyId: fromHex(h.keyId), publicKey: h.publicKey, scopes: [h.operator] }));
  const known = history.find((h) => h.keyId === id);
  if (tfv.certificate) {
    const suite = (known ?? history[0])?.suite;
    if (!suite) throw new CryptoError('the key history is empty');
    const r = resolveSigningKey(suite, tfv.authorityKeyId, tfv.certificate, roots, { operator: face.operator, at: face.issuedAt });
    if (!r.ok) throw new CryptoError(`TF_V's key certificate: ${r.message}`);
    if (known && !equal(known.publicKey, r.publicKey)) throw new CryptoError(`TF_V's key certificate certifies another key than history entry ${id}`);
    if (known) return { publicKey: known.publicKey, record: historyKey(history, id), info: keyInfo(known) };
    return { publicKey: r.publicKey, info: { keyId: id, role: 'signing', suite, validFrom: iso(r.certificate!.validFrom), validUntil: iso(r.certificate!.validUntil) } };
  }
  const k = historyKey(history, id);
  return { publicKey: k.publicKey, record: k, info: keyInfo(k) };
}

/** Verify one piece of evidence; never throws for a bad signature (the verdict says why). */
export async function arbitrate(e: Evidence, ctx: ArbitrationContext): Promise<Verdict> {
  const subject: Record<string, unknown> = {};
  try {
    if (e.kind === 'ticket') {
      const face = decodeTicketFace(e.face);
      Object.assign(subject, { operator: face.operator, tid: face.tid, serviceDate: face.serviceDate, issuedAt: iso(face.issuedAt), ...(face.card ? { card: hex(face.card) } : {}) });
      const tfv = decodeVerificationCode(e.verificationCode);
      const signer = tfvSigner(ctx.history, tfv, face);
      const suiteName = signer.record?.suite ?? (signer.info.suite as AuthorityKeyRecord['suite']);
      if (tfv.suite !== SUITE[suiteName] || !getSuite(suiteName).verify(signer.publicKey, verificationCodeMessage(e.face), tfv.signature)) {
        return { ok: false, kind: 'ticket', reason: `TF_V does not verify with key ${signer.info.keyId}: forged or altered ticket`, signer: signer.info, subject };
      }
      if (!signer.record) return { ok: true, kind: 'ticket', signer: signer.info, signedAt: iso(face.issuedAt), validAtTime: true, subject };
      return verdictInTime('ticket', signer.record, face.issuedAt, subject);
    }
    if (e.kind === 'bill') {
      const b = e.bill;
      Object.assign(subject, { billId: b.billId, kind: b.kind, operator: b.operator, tid: b.tid, card: b.card, seller: b.seller, price: b.price, currency: b.currency });
      const k = historyKey(ctx.history, b.keyId);
      try {
        verifyBill(b, k.publicKey);
      } catch (err) {
        return { ok: false, kind: 'bill', reason: (err as Error).message, signer: keyInfo(k), subject };
      }
      return verdictInTime('bill', k, b.time, subject);
    }
    const r = await checkReceipt(e, ctx);
    Object.assign(subject, { card: r.cardSerial, tid: r.tid, event: r.event, counter: r.counter, deletion: r.deletion, mode: r.mode, ...(r.faceDigest ? { faceDigest: r.faceDigest } : {}) });
    let validAtTime: boolean | undefined;
    if (r.time !== undefined && r.signer.validFrom && r.signer.validUntil) validAtTime = r.time * 1000 >= Date.parse(r.signer.validFrom) && r.time * 1000 <= Date.parse(r.signer.validUntil);
    if (validAtTime === false) return { ok: false, kind: 'receipt', reason: `card key not valid at ${iso(r.time)}`, signer: r.signer, signedAt: iso(r.time), validAtTime, subject };
    return { ok: true, kind: 'receipt', signer: r.signer, signedAt: iso(r.time), validAtTime, subject };
  } catch (err) {
    if (err instanceof EticketError || err instanceof TypeError) return { ok: false, kind: e.kind, reason: (err as Error).message, subject };
    throw err;
  }
}

function verdictInTime(kind: 'ticket' | 'bill', k: AuthorityKeyRecord, t: number, subject: Record<string, unknown>): Verdict {
  const valid = keyValidAt(k, t);
  const base = { kind, signer: keyInfo(k), signedAt: iso(t), validAtTime: valid, subject };
  if (!valid) return { ok: false, ...base, reason: `key ${k.keyId} was not in force at ${iso(t)} (valid ${iso(k.validFrom)} to ${iso(k.validUntil) ?? 'open'}${k.retiredAt ? `, retired ${iso(k.retiredAt)}` : ''})` };
  return { ok: true, ...base };
}

/**
 * Evidence from JSON or text: a bill document; `{receipt, transaction?}` as `eticket use/delete --json` print;
 * `{face, verificationCode}` hex; or bare hex of B4, or of A1 ‖ A2.
 */
export function parseEvidence(text: string): Evidence {
  const t = text.trim();
  if (!t) throw new InvalidInputError('nothing to verify: the input is empty');
  if (t.startsWith('{')) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(t) as Record<string, unknown>;
    } catch (e) {
      throw new InvalidInputError(`not JSON: ${(e as Error).message}`);
    }
    if (j.format === 'eticket-bill/1') return { kind: 'bill', bill: decodeBill(j) };
    if (typeof j.bill === 'object' && j.bill) return { kind: 'bill', bill: decodeBill(j.bill as Record<string, unknown>) };
    if (typeof j.receipt === 'string') {
      return {
        kind: 'receipt',
        encoded: fromHex(j.receipt),
        transaction: j.transaction ? symTransactionFromJson(j.transaction as Record<string, unknown>) : undefined,
        signingCertificate: typeof j.signingCertificate === 'string' ? fromHex(j.signingCertificate) : undefined,
      };
    }
    const ticket = (j.ticket ?? j) as Record<string, unknown>;
    if (typeof ticket.face === 'string' && typeof ticket.verificationCode === 'string') return { kind: 'ticket', face: fromHex(ticket.face), verificationCode: fromHex(ticket.verificationCode) };
    throw new InvalidInputError('JSON is neither a bill, a receipt ({receipt, transaction?}) nor a ticket ({face, verificationCode})');
  }
  const bytes = fromHex(t);
  if (bytes[0] === 0xb4) return { kind: 'receipt', encoded: bytes };
  if (bytes[0] === 0xa1) {
    // A1 ‖ A2: split after the face's TLV.
    const len = bytes[1] < 0x80 ? 2 + bytes[1] : bytes[1] === 0x81 ? 3 + bytes[2] : 4 + ((bytes[2] << 8) | bytes[3]);
    return { kind: 'ticket', face: bytes.subarray(0, len), verificationCode: bytes.subarray(len) };
  }
  throw new InvalidInputError('hex input is neither a receipt (B4) nor a ticket (A1 ‖ A2)');
}
