// The checking terminal (驗票終端), e.g. a gate: reads tickets (second ciphertexts, opened with key 5),
// checks TF_V with key 6 (or a key it certified), writes usage and deletes tickets answering exactly the view
// the card showed, verifies card receipts and the face they name; gate mode pki (keys 4/5 asymmetric,
// signatures) or sym (diversified AES keys, serial masked under K_priv, one session per tap, MACs).

import { randomBytes } from 'node:crypto';
import { equal, hex } from '../sdk/bytes.js';
import { decodeAnswer } from '../sdk/commands/answer.js';
import { encodeReadQuery, READ_P1 } from '../sdk/commands/read.js';
import { SELECT_P2 } from '../sdk/commands/select.js';
import { decodeTicketView, type DecodedTicketView } from '../sdk/commands/ticket-view.js';
import { encodeUsageBody, encodeUsageCommand, USAGE_P1, usageCommandMac, usageSignatureMessage, type GateMode, type UsageCommandName } from '../sdk/commands/usage-command.js';
import { checkSessionViewMac, decodeSessionView, encodeVerifyQuery, verifyP1, type VerifyCriteria } from '../sdk/commands/verify.js';
import { EnvelopeError, open } from '../sdk/crypto/envelope.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { keyId, sha256 } from '../sdk/crypto/suite.js';
import { masterKeyId, privacyKey, sessionDecrypt, unmaskSerial } from '../sdk/crypto/symmetric.js';
import { CardStatusError, CryptoError, InvalidInputError, RelayError, TicketNotFoundError, WrongCardError } from '../sdk/errors.js';
import { previousServiceDate, specField, toServiceDate } from '../sdk/fields.js';
import { checkReceiptMac, parseReceipt, receiptAnswers, receiptMessage, type Receipt } from '../sdk/receipt.js';
import { AID, LIMITS, SUITE, SW, USAGE_EVENT, type SuiteName } from '../sdk/spec.js';
import { signingKeyOrThrow, type RootKey } from '../sdk/roles/key-chain.js';
import type { CardTrust } from '../sdk/roles/trust.js';
import type { TerminalKeys } from '../sdk/roles/terminal-keys.js';
import { symSessionKeys, type OperatorMasterKey } from '../sdk/roles/sym-receipts.js';
import { decodeTicketFace, faceDigestOf, isRealName, verificationCodeMessage, type TicketFace, type UsageRecord, type VerificationCode } from '../sdk/ticket.js';
import { decide, rejectFor, type Direction, type GateDecision } from './gate.js';
import { checkWithin, type RealNameCheck, type RealNameChecker } from './realname.js';
import type { CardSession, SendOptions } from './session.js';

/** What a checking terminal holds: its keys or master keys, the authority keys, its trust root, gate id, station, mode and clock. loadGateConfig reads one from files. */
export interface CheckingTerminalConfig {
  /** Keys 4/5. Pki mode needs them; a sym-only gate may leave them out. */
  keys?: TerminalKeys;
  /** Key 6: the authority's root public keys trusted for TF_V (signing keys they certified are accepted through their A4). */
  authorities: Uint8Array[];
  /** Resolves and checks the card's receipt-signing key. Pki mode needs it; a sym-only gate may leave it out. */
  cardTrust?: CardTrust;
  /** Suite of the authority keys (TF_V); defaults to that of `keys` or `cardTrust`, which a sym-only gate may lack. */
  suite?: SuiteName;
  gateId: string;
  station: string;
  /** Epoch seconds; injectable for tests. */
  clock?: () => number;
  /** Gate mode: `pki` (default) uses `keys`; `sym` derives each card's key from `masterKeys`. */
  mode?: GateMode;
  /** Sym mode: the checking master key of each operator this gate serves (the first is the default). */
  masterKeys?: OperatorMasterKey[];
  /**
   * No further APDU of a command starts after this many ms (default GATE_COMMAND_DEADLINE_MS), so a card that
   * keeps a command going cannot hold the gate; GET RESPONSE rounds and response size are bounded by the session.
   */
  commandDeadlineMs?: number;
  /**
   * Real-name tickets: where the terminal gets the holder (BackofficeHolderChecker over the API). Without it a
   * real-name ticket still passes on what the card proved, flagged "holder not checked".
   */
  realName?: RealNameChecker;
  /** The directions a gate checks the holder on (default entry only: each read spends one of the ticket's reads). */
  realNameOn?: Direction[];
  /** How long a tap waits for the holder (default REALNAME_WAIT_MS); later, the tap reports it not checked. */
  realNameTimeoutMs?: number;
}

/** Decoded faces a checking terminal keeps (decodeFace): the cards that may tap it again soon. */
const FACE_CACHE_SIZE = 4;
/** A tap waits this long for the back office's holder answer; the card's decision never waits for it. */
export const REALNAME_WAIT_MS = 2_000;

/** A gate's per-command deadline: far above a real tap's 0.1-0.3 s, far below a passenger's patience. */
export const GATE_COMMAND_DEADLINE_MS = 5_000;

export type { GateMode, OperatorMasterKey, Receipt };

/** Gate id and station travel in every WRITE USAGE / DELETE: their spec lengths bound them. */
const GATE_TEXT = [specField('gateId', 'GATE_ID'), specField('station', 'STATION')] as const;

/** A pki operation (READ, pki VERIFY, signed commands, TF_V) on a terminal configured without its pki keys. */
export class PkiNotConfiguredError extends InvalidInputError {
  constructor(operation: string, missing: string) {
    super(`${operation} needs the terminal's ${missing}, which this sym-only gate was not given (add them to its config, or use gate mode sym)`);
  }
}

/** Terminal side of a sym session: what the next WRITE USAGE / DELETE needs. */
export interface GateSession {
  operator: string;
  macKey: Uint8Array;
  /** The last MAC of the session; the next command's MAC is chained on it. */
  chain: Uint8Array;
  /** Logged with the receipt (SymTransaction) so that the back office can re-derive the session. */
  keyId: Uint8Array;
  terminalChallenge: Uint8Array;
  cardChallenge: Uint8Array;
}

/** A ticket as the card showed it to this terminal. */
export interface TicketView {
  sequenceNumber: number;
  face: TicketFace;
  faceEncoded: Uint8Array;
  usage: UsageRecord;
  cardSerial: Uint8Array;
  /** VERIFY only: the one-time card challenge that the next WRITE USAGE / DELETE must carry. */
  cardChallenge?: Uint8Array;
  /** SHA-256 of the view B2 as received (DF21 of the next pki command): the card writes only if it showed exactly this. */
  viewDigest: Uint8Array;
  /** Present when asked for (audit); already checked against the authority keys. */
  verificationCode?: VerificationCode;
  /** Sym mode only: the session VERIFY opened (spent by the next WRITE USAGE / DELETE). */
  session?: GateSession;
}

/** Which ticket VERIFY asks for: a TID, or a service date (and train, station). */
export type TicketQuery = VerifyCriteria;

/**
 * Throws InvalidInputError (or PkiNotConfiguredError) for a configuration no tap could work with: suites that
 * disagree, a gate id or station the protocol cannot carry, a sym gate without master keys, a pki gate without its keys.
 */
export function checkTerminalConfig(config: CheckingTerminalConfig): void {
  const suites = new Set([config.keys?.suite, config.cardTrust?.suite, config.suite].filter((x) => x !== undefined));
  if (suites.size > 1) throw new InvalidInputError('terminal keys, card trust and suite disagree on the suite');
  for (const f of GATE_TEXT) {
    const n = Buffer.byteLength(config[f.key] ?? '', 'utf8');
    if (n < f.min || n > f.max) throw new InvalidInputError(`${f.key} must be ${f.min}..${f.max} bytes of UTF-8 (apdu-spec ${f.name}), got ${n}`);
  }
  const mode = config.mode ?? 'pki';
  if (mode === 'sym' && !config.masterKeys?.length) throw new InvalidInputError('gate mode sym needs at least one operator master key');
  // A pki gate without its keys could do nothing; fail where it is configured, not at the first tap.
  if (mode === 'pki' && (!config.keys || !config.cardTrust)) {
    throw new PkiNotConfiguredError('gate mode pki', [!config.keys && 'keys 4/5', !config.cardTrust && 'card trust'].filter(Boolean).join(' and '));
  }
}

/** The checking terminal (驗票終端), e.g. a gate: reads and verifies tickets, records usage and deletes tickets on the card, checks the card's receipts; `passGate` is the whole tap. */
export class CheckingTerminal {
  private readonly clock: () => number;
  private readonly signingKeys = new Map<string, Uint8Array>();
  private readonly masterKeyIds = new Map<string, Uint8Array>();
  private readonly privacyKeys = new Map<string, Uint8Array>();
  /** Faces this terminal decoded, by their exact bytes: a card tapped again shows the same face (FACE_CACHE_SIZE). */
  private readonly faces: { encoded: Uint8Array; face: TicketFace }[] = [];
  readonly mode: GateMode;

  constructor(readonly session: CardSession, readonly config: CheckingTerminalConfig) {
    this.clock = config.clock ?? (() => Math.floor(Date.now() / 1000));
    checkTerminalConfig(config);
    this.mode = config.mode ?? 'pki';
  }

  /** Keys 4/5 and card trust, or a typed error naming what is missing for `operation`. */
  private pki(operation: string): { keys: TerminalKeys; cardTrust: CardTrust } {
    const { keys, cardTrust } = this.config;
    if (!keys || !cardTrust) throw new PkiNotConfiguredError(operation, [!keys && 'keys 4/5', !cardTrust && 'card trust'].filter(Boolean).join(' and '));
    return { keys, cardTrust };
  }

  private get keys(): TerminalKeys {
    return this.pki('a pki operation').keys;
  }

  private masterKey(operator?: string): OperatorMasterKey {
    const list = this.config.masterKeys ?? [];
    const mk = operator === undefined ? list[0] : list.find((k) => k.operator === operator);
    if (!mk) throw new InvalidInputError(`this gate holds no master key for operator ${operator}`);
    let id = this.masterKeyIds.get(mk.operator);
    if (!id) {
      id = masterKeyId(mk.key, mk.operator);
      this.masterKeyIds.set(mk.operator, id);
      this.privacyKeys.set(mk.operator, privacyKey(mk.key, mk.operator));
    }
    return mk;
  }

  /** Suite of TF_V and card signatures; a sym-only gate names it in its config when it checks TF_V. */
  private get suiteName(): SuiteName {
    const name = this.config.keys?.suite ?? this.config.cardTrust?.suite ?? this.config.suite;
    if (!name) throw new PkiNotConfiguredError('checking TF_V', 'suite (or keys 4/5)');
    return name;
  }

  private get suite() {
    return getSuite(this.suiteName);
  }

  /** Every command of the gate goes out with the gate's deadline. */
  private send(name: string, opts: SendOptions = {}): Promise<{ data: Uint8Array; sw: number }> {
    return this.session.send(name, { deadlineMs: this.config.commandDeadlineMs ?? GATE_COMMAND_DEADLINE_MS, ...opts });
  }

  /** SELECT without FCI: the gate learns the card serial from the sealed (pki) or masked (sym) view. */
  async select(): Promise<void> {
    if (!this.session.atr) await this.session.connect();
    await this.send('SELECT', { p1: 0x04, p2: SELECT_P2.NO_FCI, data: AID });
  }

  /** READ (621-622): every ticket for `date` or later (and `train`), by repeating the command until a view shows none. */
  async readTickets(query: { date?: number; train?: string } = {}): Promise<TicketView[]> {
    const keys = this.pki('READ').keys;
    const challenge = new Uint8Array(randomBytes(LIMITS.terminalChallengeLength));
    const data = encodeReadQuery({ keyId: keys.keyId, terminalChallenge: challenge, date: query.date, train: query.train });
    const out: TicketView[] = [];
    for (let p1: number = READ_P1.FIRST; ; p1 = READ_P1.NEXT) {
      const r = await this.send('READ', { p1, data });
      const v = this.openView('READ', r.data, challenge);
      if (v.status !== 'shown') return out;
      out.push(this.shownView(v));
      // A card holds at most limits.maxTickets tickets: a card listing more misbehaves.
      if (out.length > LIMITS.maxTickets) throw new CryptoError('card keeps answering READ');
    }
  }

  /**
   * VERIFY (631-635): the ticket matching `query`, with a fresh card challenge. With
   * `verificationCode` (default) TF_V is fetched and checked against the authority keys.
   */
  async verifyTicket(query: TicketQuery, options: { verificationCode?: boolean; operator?: string } = {}): Promise<TicketView> {
    const withTfv = options.verificationCode ?? true;
    if (this.mode === 'sym') return this.verifySym(new Uint8Array(randomBytes(LIMITS.terminalChallengeLength)), query, withTfv, options.operator);
    const { keys, cardTrust } = this.pki('VERIFY in gate mode pki');
    const once = async (certificate: boolean) => {
      const challenge = new Uint8Array(randomBytes(LIMITS.terminalChallengeLength));
      const data = encodeVerifyQuery({ keyId: keys.keyId, terminalChallenge: challenge, criteria: query });
      const r = await this.send('VERIFY', { p1: verifyP1('pki', withTfv, certificate), data });
      return this.openView('VERIFY', r.data, challenge);
    };
    let v = await once(false);
    // First meeting of an RSA card: its receipt key comes with a second VERIFY (P1 bit 2, the signing certificate in
    // the view), traced to the CA and cached. No GET DATA: a gate holds no issuer authorisation.
    if (cardTrust.needsSigningCertificate && !this.signingKeys.has(hex(v.cardSerial))) {
      v = await once(true);
      if (!v.signingCertificate) throw new CryptoError('VERIFY P1 bit 2 answer carries no signing certificate');
      this.signingKeys.set(hex(v.cardSerial), cardTrust.signingKey({ suite: cardTrust.suite, serial: v.cardSerial, signingCertificate: v.signingCertificate }));
    }
    const view = this.shownView(v);
    if (!view.cardChallenge) throw new CryptoError('VERIFY answer carries no card challenge');
    if (withTfv && !view.verificationCode) throw new CryptoError('VERIFY answer carries no TF_V');
    return view;
  }

  /** VERIFY P1=02/03: unmask the serial with K_priv, derive K_card from it, check the session MAC, then decrypt the view. */
  private async verifySym(challenge: Uint8Array, query: TicketQuery, withTfv: boolean, operator?: string): Promise<TicketView> {
    const mk = this.masterKey(operator);
    const keyIdSent = this.masterKeyIds.get(mk.operator)!;
    const data = encodeVerifyQuery({ keyId: keyIdSent, terminalChallenge: challenge, criteria: query });
    const r = await this.send('VERIFY', { p1: verifyP1('sym', withTfv), data });
    const b5 = decodeAnswer('VERIFY', () => decodeSessionView(r.data));
    // The serial travels masked under the operator's K_priv with this RC: unmask it, then derive K_card from it.
    const serial = unmaskSerial(this.privacyKeys.get(mk.operator)!, b5.maskedSerial, b5.cardChallenge);
    if (!serial) throw new CryptoError('masked serial does not unmask with this operator\'s privacy key: not a card of this operator, or altered');
    const keys = symSessionKeys(mk, serial, challenge, b5.cardChallenge);
    if (!checkSessionViewMac(keys.mac, b5.mac, b5.head)) throw new CryptoError('ticket view MAC does not verify: not a card holding this operator\'s key, or altered');
    const v = this.parseView('VERIFY', sessionDecrypt(keys.enc, b5.cryptogram), challenge);
    if (!equal(v.cardSerial, serial) || !v.cardChallenge || !equal(v.cardChallenge, b5.cardChallenge)) throw new CryptoError('ticket view does not match its session');
    const view = this.shownView(v);
    if (withTfv && !view.verificationCode) throw new CryptoError('VERIFY answer carries no TF_V');
    view.session = { operator: mk.operator, macKey: keys.mac, chain: b5.mac, keyId: keyIdSent, terminalChallenge: challenge, cardChallenge: b5.cardChallenge };
    return view;
  }

  private openView(command: string, sealed: Uint8Array, expectedChallenge?: Uint8Array): DecodedTicketView {
    let plain: Uint8Array;
    try {
      const keys = this.keys;
      plain = open(keys.encryption, SUITE[keys.suite], keys.keyId, sealed);
    } catch (e) {
      if (e instanceof EnvelopeError) throw new CryptoError(`ticket view from the card failed its check: ${e.message}`);
      throw e;
    }
    return this.parseView(command, plain, expectedChallenge);
  }

  private parseView(command: string, plain: Uint8Array, expectedChallenge?: Uint8Array): DecodedTicketView {
    const v = decodeAnswer(command, () => decodeTicketView(plain, (encoded) => this.decodeFace(encoded)));
    if (expectedChallenge && (!v.terminalChallenge || !equal(v.terminalChallenge, expectedChallenge))) {
      throw new CryptoError('ticket view does not answer this terminal challenge (replayed response)');
    }
    return v;
  }

  /**
   * A face this terminal already decoded from exactly these bytes, or a new decoding (kept, the oldest dropped).
   * Decoding is a pure function of the bytes, so a hit changes nothing but the time: every check that depends on
   * the card (binding, TF_V, receipt face digest) still runs on every view. The copy keeps no card buffer alive.
   */
  private decodeFace(encoded: Uint8Array): TicketFace {
    for (const f of this.faces) if (equal(f.encoded, encoded)) return f.face;
    const face = decodeTicketFace(encoded);
    if (this.faces.length >= FACE_CACHE_SIZE) this.faces.shift();
    this.faces.push({ encoded: encoded.slice(), face: Object.freeze(face) as TicketFace });
    return face;
  }

  /**
   * The view as a shown ticket, or TicketNotFoundError (no match, void). A version 2 face names the card it was
   * issued to: shown by another card it is a copy (wrong_card). TF_V, when the view carries it, is checked.
   */
  private shownView(v: DecodedTicketView): TicketView {
    if (v.status !== 'shown') throw new TicketNotFoundError('VERIFY', v.status);
    const face = v.face!;
    if (face.card !== undefined && !equal(face.card, v.cardSerial)) throw new WrongCardError(`ticket ${face.tid} was issued to card ${hex(face.card)}, shown by card ${hex(v.cardSerial)}`);
    // DF21 is only sent by a pki command: the digest is taken the first time it is read (a sym tap never reads it).
    const encoded = v.encoded;
    let digest: Uint8Array | undefined;
    const view: TicketView = {
      sequenceNumber: v.sequenceNumber!,
      face,
      faceEncoded: v.faceEncoded!,
      usage: v.usage!,
      cardSerial: v.cardSerial,
      cardChallenge: v.cardChallenge,
      get viewDigest() {
        return (digest ??= sha256(encoded));
      },
      set viewDigest(d: Uint8Array) {
        digest = d;
      },
    };
    if (v.verificationCode) {
      view.verificationCode = v.verificationCode;
      this.checkVerificationCode(view.faceEncoded, v.verificationCode);
    }
    return view;
  }

  /**
   * Key 6: TF_V must verify with one of the trusted root keys, or with a signing key one of them certified (A4)
   * for the ticket's operator and issue time. Throws CryptoError naming what is wrong.
   */
  checkVerificationCode(faceEncoded: Uint8Array, tfv: VerificationCode): void {
    const face = decodeAnswer('VERIFY', () => decodeTicketFace(faceEncoded));
    const roots: RootKey[] = this.config.authorities.map((a) => ({ keyId: keyId(a), publicKey: a, scopes: ['*'] }));
    if (tfv.suite !== SUITE[this.suiteName]) throw new CryptoError('TF_V of another suite');
    const { publicKey } = signingKeyOrThrow(this.suiteName, tfv.authorityKeyId, tfv.certificate, roots, { operator: face.operator, at: face.issuedAt });
    if (!this.suite.verify(publicKey, verificationCodeMessage(faceEncoded), tfv.signature)) {
      throw new CryptoError('TF_V does not verify: forged or altered ticket');
    }
  }

  /** WRITE USAGE (641-643) for a ticket just verified; returns the card's checked receipt. */
  async recordUsage(view: TicketView, event: keyof typeof USAGE_EVENT): Promise<Receipt> {
    if (event === 'DELETED') throw new InvalidInputError('use deleteTicket to delete');
    return this.signedCommand('WRITE USAGE', view, USAGE_EVENT[event]);
  }

  /** DELETE (651-653): voids the ticket on the card; the receipt lets the back office re-issue it. */
  async deleteTicket(view: TicketView): Promise<Receipt> {
    return this.signedCommand('DELETE', view, undefined);
  }

  private async signedCommand(name: UsageCommandName, view: TicketView, event: number | undefined): Promise<Receipt> {
    if (!view.cardChallenge) throw new InvalidInputError(`${name} needs a ticket from verifyTicket (it carries the card challenge)`);
    if (view.session) return this.macedCommand(name, view, event);
    const keys = this.pki(`${name} in gate mode pki`).keys;
    const body = encodeUsageBody(name, 'pki', { keyId: keys.keyId, ...this.commandFields(view, event), viewDigest: view.viewDigest });
    const signed = encodeUsageCommand('pki', body, keys.signature.sign(usageSignatureMessage(name, view.cardSerial, body)));
    view.cardChallenge = undefined; // spent, whatever the card answers
    let r: { data: Uint8Array; sw: number };
    try {
      r = await this.send(name, { p1: USAGE_P1.pki, data: signed });
    } catch (e) {
      // The gate's own VERIFY just showed this challenge: a card with no view pending for it never showed that view.
      if (e instanceof CardStatusError && e.sw === SW.REFERENCE_DATA_NOT_USABLE) throw new RelayError(`${name} 6984: the card has no view pending with the challenge of the view the gate received`, { cause: e });
      throw e;
    }
    const receipt = decodeAnswer(name, () => parseReceipt(r.data));
    if (!receiptAnswers(receipt, signed) || receipt.tid !== view.face.tid || !equal(receipt.cardSerial, view.cardSerial)) {
      throw new CryptoError(`${name} receipt does not answer this command`);
    }
    const key = await this.cardSigningKey(view.cardSerial);
    if (receipt.version !== 2 || !this.suite.verify(key, receiptMessage(receipt), receipt.signature)) {
      throw new CryptoError(`${name} receipt signature does not verify: not a genuine card`);
    }
    this.checkReceiptFace(name, receipt, view);
    if (receipt.usage) view.usage = receipt.usage;
    return receipt;
  }

  /** The receipt must name the face the gate decided on (DF20): else the card applied the command to another one. */
  private checkReceiptFace(name: string, receipt: Receipt, view: TicketView): void {
    if (!receipt.faceDigest || !equal(receipt.faceDigest, faceDigestOf(view.faceEncoded))) throw new RelayError(`${name} receipt names another ticket face than the one the gate decided on`);
  }

  /** The fields both gate modes' WRITE USAGE / DELETE carry (sdk/commands/usage-command.ts has their order). */
  private commandFields(view: TicketView, event: number | undefined) {
    return { cardChallenge: view.cardChallenge!, tid: view.face.tid, counter: view.usage.counter, event, gateId: this.config.gateId, station: this.config.station, time: this.clock() };
  }

  /** Sym mode: B6 MAC'd under the session, chained on the VERIFY answer; the receipt MAC chains on ours. */
  private async macedCommand(name: UsageCommandName, view: TicketView, event: number | undefined): Promise<Receipt> {
    const session = view.session!;
    const body = encodeUsageBody(name, 'sym', this.commandFields(view, event));
    const mac = usageCommandMac(session.macKey, session.chain, name, view.cardSerial, body);
    view.cardChallenge = undefined; // the session is spent, whatever the card answers
    view.session = undefined;
    const macedCommand = encodeUsageCommand('sym', body, mac);
    const r = await this.send(name, { p1: USAGE_P1.sym, data: macedCommand });
    const receipt = decodeAnswer(name, () => parseReceipt(r.data));
    if (receipt.tid !== view.face.tid || !equal(receipt.cardSerial, view.cardSerial) || receipt.commandDigest || !receipt.mac) {
      throw new CryptoError(`${name} receipt does not answer this command`);
    }
    if (!checkReceiptMac(session.macKey, mac, receipt)) {
      throw new CryptoError(`${name} receipt MAC does not verify: not the card of this session`);
    }
    this.checkReceiptFace(name, receipt, view);
    receipt.sym = {
      operator: session.operator,
      keyId: session.keyId,
      terminalChallenge: session.terminalChallenge,
      cardChallenge: session.cardChallenge,
      viewMac: session.chain,
      command: name,
      macedCommand,
    };
    if (receipt.usage) view.usage = receipt.usage;
    return receipt;
  }

  /**
   * The card's receipt key, traced to the trust root once per card and cached: SM9 from the serial; RSA from the
   * certificate the first VERIFY of this card carried (P1 bit 2).
   */
  async cardSigningKey(serial: Uint8Array): Promise<Uint8Array> {
    const k = hex(serial);
    let key = this.signingKeys.get(k);
    if (!key) {
      const { cardTrust } = this.pki('checking a card signature');
      if (cardTrust.needsSigningCertificate) throw new CryptoError(`card ${k}: no signing certificate came with its view (VERIFY P1 bit 2)`);
      key = cardTrust.signingKey({ suite: cardTrust.suite, serial });
      this.signingKeys.set(k, key);
    }
    return key;
  }

  /**
   * Gate mode pki: another ticket for the tap's date (and train, and this station as origin or destination, as VERIFY
   * matches) that `decide` would let through, verified afresh by its TID; undefined when there is none or the card
   * cannot list them. Gate mode sym cannot list a card's tickets (READ is pki): there the first ticket decides.
   */
  private async passableAlternative(direction: Direction, dates: number[], train: string | undefined, shown: TicketView, now: number, audit: boolean): Promise<TicketView | undefined> {
    if (this.mode !== 'pki') return undefined;
    const station = this.config.station;
    try {
      for (const t of await this.readTickets({ date: Math.min(...dates), train })) {
        if (!dates.includes(t.face.serviceDate) || t.face.tid === shown.face.tid) continue;
        if (station !== undefined && t.face.origin !== station && t.face.destination !== station) continue;
        if (!decide(t.face, t.usage, { direction, station, now }).pass) continue;
        return await this.verifyTicket({ tid: t.face.tid }, { verificationCode: audit });
      }
    } catch (e) {
      // The first ticket's decision stands; rejectFor rethrows what is not the card's doing.
      rejectFor(e);
    }
    return undefined;
  }

  /**
   * The real-name step for a ticket the card has shown (an inspector's check, or a gate's): the holder from the
   * back office, proven against the face's binding. Never throws for what the network or the service does.
   */
  async checkHolder(view: TicketView): Promise<RealNameCheck> {
    if (!isRealName(view.face)) return { status: 'not_checked', reason: 'not_real_name', message: `ticket ${view.face.tid} is not a real-name ticket` };
    if (!this.config.realName) return { status: 'not_checked', reason: 'no_service', message: 'this terminal has no back office for holder checks' };
    return checkWithin(this.config.realName, view.face, this.config.realNameTimeoutMs ?? REALNAME_WAIT_MS);
  }

  /**
   * The card's first ticket for the first of `dates` that has one (and the train, and this station as origin or
   * destination); not_found (or void) for the first date when none has. A fault on a later date is that fault.
   */
  private async ticketForTap(dates: number[], train: string | undefined, audit: boolean): Promise<TicketView> {
    let notFound: TicketNotFoundError | undefined;
    for (const date of dates) {
      try {
        return await this.verifyTicket({ date, train, station: this.config.station }, { verificationCode: audit });
      } catch (e) {
        if (!(e instanceof TicketNotFoundError)) throw e;
        notFound ??= e;
      }
    }
    throw notFound!;
  }

  /**
   * One tap: select, find the ticket for today at this station (else yesterday's), decide, record the entry or exit. `screen`
   * may refuse the ticket the card showed (a denylisted card) before the gate's own rules run.
   * Never throws for anything a card or a reader does (a refusal, a malformed answer, bounds or deadline
   * exceeded, the card pulled): that is a REJECT with its reason (gate.ts rejectFor).
   * A real-name ticket that passes gets its holder checked (on the directions in `realNameOn`) while the card
   * records the usage: `realName` says checked, not_checked (offline, refused, too slow) or mismatch. The gate's
   * decision is the card's; staff act on `realName` (and the gate journal keeps it).
   */
  async passGate(
    direction: Direction,
    options: { date?: number; train?: string; auditVerificationCode?: boolean; screen?: (ticket: TicketView) => GateDecision | undefined } = {},
  ): Promise<{ decision: GateDecision; ticket?: TicketView; receipt?: Receipt; realName?: RealNameCheck }> {
    const now = this.clock();
    const date = options.date ?? toServiceDate(new Date(now * 1000));
    // Without a ticket for today, one for the day before: a ticket stays valid past midnight (validUntil, 04:00 the
    // next day by default: the operating day), so a passenger of a late or overnight service enters or leaves on the
    // next calendar day. decide() still refuses it once its validity has ended.
    const dates = [date, previousServiceDate(date)];
    let ticket: TicketView;
    try {
      await this.select();
      ticket = await this.ticketForTap(dates, options.train, options.auditVerificationCode ?? false);
    } catch (e) {
      return { decision: rejectFor(e) };
    }
    // What the gate knows beyond the card (its denylist) refuses before anything is written to the card, and
    // before any other ticket of the card is looked at.
    const screened = options.screen?.(ticket);
    if (screened && !screened.pass) return { decision: screened, ticket };
    let decision = screened ?? decide(ticket.face, ticket.usage, { direction, station: this.config.station, now });
    if (!decision.pass) {
      // The card shows the first ticket in travel order; a second ticket for the same service may be the one that can
      // pass (the first already used): look for it before refusing. The screen judges it as it judged the first.
      const other = await this.passableAlternative(direction, dates, options.train, ticket, now, options.auditVerificationCode ?? false);
      if (!other) return { decision, ticket };
      ticket = other;
      decision = options.screen?.(ticket) ?? decide(ticket.face, ticket.usage, { direction, station: this.config.station, now });
      if (!decision.pass) return { decision, ticket };
    }
    // The holder is fetched while the card writes the usage: the network round trip costs the tap nothing more.
    const holder = isRealName(ticket.face) && (this.config.realNameOn ?? ['entry']).includes(direction) ? this.checkHolder(ticket) : undefined;
    try {
      const receipt = await this.recordUsage(ticket, direction === 'entry' ? 'ENTRY' : 'EXIT');
      return { decision, ticket, receipt, ...(holder ? { realName: await holder } : {}) };
    } catch (e) {
      return { decision: rejectFor(e), ticket, ...(holder ? { realName: await holder } : {}) };
    }
  }
}
