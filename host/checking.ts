// The checking terminal (驗票終端), e.g. a gate: reads tickets (second ciphertexts, opened with key 5),
// checks TF_V with key 6, writes usage and deletes tickets, verifies card receipts; gate mode pki
// (keys 4/5 asymmetric, signatures) or sym (diversified AES keys, one session per tap, MACs).

import { randomBytes } from 'node:crypto';
import { concat, equal, hex, readUint, u16, u32, utf8 } from '../sdk/bytes.js';
import { open, EnvelopeError } from '../sdk/crypto/envelope.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { keyId, sha256 } from '../sdk/crypto/suite.js';
import { CardStatusError, CryptoError, InvalidInputError } from '../sdk/errors.js';
import { AID, command, LIMITS, SUITE, SW, T, USAGE_EVENT, type SuiteName } from '../sdk/spec.js';
import type { CardTrust } from '../sdk/roles/trust.js';
import type { TerminalKeys } from '../sdk/roles/terminal-keys.js';
import {
  decodeTicketFace,
  decodeUsageRecordContent,
  decodeVerificationCodeContent,
  SIGNATURE_CONTEXT,
  verificationCodeMessage,
  type TicketFace,
  type UsageRecord,
  type VerificationCode,
} from '../sdk/ticket.js';
import { TlvMap, template, tlv } from '../sdk/tlv.js';
import { masterKeyId, sessionDecrypt, checkSessionMac, SYM_CONTEXT } from '../sdk/crypto/symmetric.js';
import { parseReceipt, receiptSignedBytes, type Receipt } from '../sdk/receipt.js';
import { checkSymReceiptMac, symCommandMac, symSessionKeys, type OperatorMasterKey } from '../sdk/roles/sym-receipts.js';
import { decide, reject, type Direction, type GateDecision } from './gate.js';
import type { CardSession } from './session.js';

/** What a checking terminal holds: its keys or master keys, the authority keys, its trust root, gate id, station, mode and clock. loadGateConfig reads one from files. */
export interface CheckingTerminalConfig {
  /** Keys 4/5. Pki mode needs them; a sym-only gate may leave them out. */
  keys?: TerminalKeys;
  /** Key 6: authority public keys trusted for TF_V. */
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
}

/** Gate mode: `pki` (keys 4/5, card-signed receipts) or `sym` (diversified AES keys, MAC receipts only the operator can check). */
export type GateMode = 'pki' | 'sym';

export type { OperatorMasterKey, Receipt };
export { parseReceipt, receiptSignedBytes };

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
  /** Present when asked for (audit); already checked against the authority keys. */
  verificationCode?: VerificationCode;
  /** Sym mode only: the session VERIFY opened (spent by the next WRITE USAGE / DELETE). */
  session?: GateSession;
}

/** Which ticket VERIFY asks for: a TID, or a service date (and train, station). */
export type TicketQuery = { tid: string } | { date: number; train?: string; station?: string };

/** The checking terminal (驗票終端), e.g. a gate: reads and verifies tickets, records usage and deletes tickets on the card, checks the card's receipts; `passGate` is the whole tap. */
export class CheckingTerminal {
  private readonly clock: () => number;
  private readonly signingKeys = new Map<string, Uint8Array>();
  private readonly masterKeyIds = new Map<string, Uint8Array>();
  readonly mode: GateMode;

  constructor(readonly session: CardSession, readonly config: CheckingTerminalConfig) {
    this.clock = config.clock ?? (() => Math.floor(Date.now() / 1000));
    const suites = new Set([config.keys?.suite, config.cardTrust?.suite, config.suite].filter((x) => x !== undefined));
    if (suites.size > 1) throw new InvalidInputError('terminal keys, card trust and suite disagree on the suite');
    this.mode = config.mode ?? 'pki';
    if (this.mode === 'sym' && !config.masterKeys?.length) throw new InvalidInputError('gate mode sym needs at least one operator master key');
    // A pki gate without its keys could do nothing; fail where it is configured, not at the first tap.
    if (this.mode === 'pki') this.pki('gate mode pki');
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

  /** SELECT without FCI: the gate learns the card serial from the sealed view. */
  async select(): Promise<void> {
    if (!this.session.atr) await this.session.connect();
    await this.session.send('SELECT', { p1: 0x04, p2: 0x0c, data: AID });
  }

  /** READ (621-622): every ticket for `date` or later (and `train`), by repeating the command. */
  async readTickets(query: { date?: number; train?: string } = {}): Promise<TicketView[]> {
    const keys = this.pki('READ').keys;
    const data = concat(
      tlv(T.KEY_ID, keys.keyId),
      query.date !== undefined ? tlv(T.SERVICE_DATE, u32(query.date)) : new Uint8Array(0),
      query.train !== undefined ? tlv(T.TRAIN, utf8(query.train)) : new Uint8Array(0),
    );
    const out: TicketView[] = [];
    for (let p1 = 0x00; ; p1 = 0x01) {
      const r = await this.session.send('READ', { p1, data, accept: [SW.RECORD_NOT_FOUND] });
      if (r.sw === SW.RECORD_NOT_FOUND) return out;
      out.push(this.openView(r.data));
      if (out.length > 0xffff) throw new CryptoError('card keeps answering READ');
    }
  }

  /**
   * VERIFY (631-635): the ticket matching `query`, with a fresh card challenge. With
   * `verificationCode` (default) TF_V is fetched and checked against the authority keys.
   */
  async verifyTicket(query: TicketQuery, options: { verificationCode?: boolean; operator?: string } = {}): Promise<TicketView> {
    const withTfv = options.verificationCode ?? true;
    const challenge = new Uint8Array(randomBytes(LIMITS.terminalChallengeLength));
    const criteria =
      'tid' in query
        ? tlv(T.TID, utf8(query.tid))
        : concat(
            tlv(T.SERVICE_DATE, u32(query.date)),
            query.train !== undefined ? tlv(T.TRAIN, utf8(query.train)) : new Uint8Array(0),
            query.station !== undefined ? tlv(T.STATION, utf8(query.station)) : new Uint8Array(0),
          );
    if (this.mode === 'sym') return this.verifySym(challenge, criteria, withTfv, options.operator);
    const data = concat(tlv(T.KEY_ID, this.pki('VERIFY in gate mode pki').keys.keyId), tlv(T.TERMINAL_CHALLENGE, challenge), criteria);
    const r = await this.session.send('VERIFY', { p1: withTfv ? 0x01 : 0x00, data });
    const view = this.openView(r.data, challenge);
    if (!view.cardChallenge) throw new CryptoError('VERIFY answer carries no card challenge');
    if (withTfv && !view.verificationCode) throw new CryptoError('VERIFY answer carries no TF_V');
    return view;
  }

  /** VERIFY P1=02/03: derive K_card from the clear serial, check the session MAC, then decrypt the view. */
  private async verifySym(challenge: Uint8Array, criteria: Uint8Array, withTfv: boolean, operator?: string): Promise<TicketView> {
    const mk = this.masterKey(operator);
    const keyIdSent = this.masterKeyIds.get(mk.operator)!;
    const data = concat(tlv(T.KEY_ID, keyIdSent), tlv(T.TERMINAL_CHALLENGE, challenge), criteria);
    const r = await this.session.send('VERIFY', { p1: withTfv ? 0x03 : 0x02, data });
    let serial: Uint8Array, cardChallenge: Uint8Array, cryptogram: Uint8Array, mac: Uint8Array, head: Uint8Array;
    try {
      const outer = TlvMap.parse(r.data, { allowed: [T.SESSION_VIEW] });
      const content = outer.require(T.SESSION_VIEW);
      const m = TlvMap.parse(content, { allowed: [T.CARD_SERIAL, T.CARD_CHALLENGE, 0x85, T.MAC] });
      if (m.items.map((i) => i.tag).join() !== [T.CARD_SERIAL, T.CARD_CHALLENGE, 0x85, T.MAC].join()) throw new Error('fields out of order');
      serial = m.bytes(T.CARD_SERIAL, 8, 8, 'serial');
      cardChallenge = m.bytes(T.CARD_CHALLENGE, LIMITS.challengeLength, LIMITS.challengeLength, 'card challenge');
      cryptogram = m.bytes(0x85, 16, 4096, 'cryptogram');
      mac = m.bytes(T.MAC, LIMITS.symmetricMacLength, LIMITS.symmetricMacLength, 'MAC');
      head = content.subarray(0, content.length - tlv(T.MAC, mac).length);
    } catch (e) {
      throw new CryptoError(`sym VERIFY answer is malformed: ${(e as Error).message}`);
    }
    const keys = symSessionKeys(mk, serial, challenge, cardChallenge);
    if (!checkSessionMac(keys.mac, mac, SYM_CONTEXT.VIEW, new Uint8Array(0), head)) throw new CryptoError('ticket view MAC does not verify: not a card holding this operator\'s key, or altered');
    const view = this.parseView(sessionDecrypt(keys.enc, cryptogram), challenge);
    if (!equal(view.cardSerial, serial) || !view.cardChallenge || !equal(view.cardChallenge, cardChallenge)) throw new CryptoError('ticket view does not match its session');
    if (withTfv && !view.verificationCode) throw new CryptoError('VERIFY answer carries no TF_V');
    view.session = { operator: mk.operator, macKey: keys.mac, chain: mac, keyId: keyIdSent, terminalChallenge: challenge, cardChallenge };
    return view;
  }

  private openView(sealed: Uint8Array, expectedChallenge?: Uint8Array): TicketView {
    let plain: Uint8Array;
    try {
      const keys = this.keys;
      plain = open(keys.encryption, SUITE[keys.suite], keys.keyId, sealed);
    } catch (e) {
      if (e instanceof EnvelopeError) throw new CryptoError(`ticket view from the card failed its check: ${e.message}`);
      throw e;
    }
    return this.parseView(plain, expectedChallenge);
  }

  private parseView(plain: Uint8Array, expectedChallenge?: Uint8Array): TicketView {
    const outer = TlvMap.parse(plain, { allowed: [T.TICKET_VIEW] });
    const m = TlvMap.parse(outer.require(T.TICKET_VIEW), {
      allowed: [T.SEQUENCE_NUMBER, T.TICKET_FACE, T.USAGE_RECORD, T.TERMINAL_CHALLENGE, T.CARD_CHALLENGE, T.VERIFICATION_CODE, T.CARD_SERIAL],
    });
    if (expectedChallenge && !equal(m.bytes(T.TERMINAL_CHALLENGE, 16, 16, 'terminal challenge'), expectedChallenge)) {
      throw new CryptoError('ticket view does not answer this terminal challenge (replayed response)');
    }
    const faceEncoded = tlv(T.TICKET_FACE, m.require(T.TICKET_FACE));
    const face = decodeTicketFace(faceEncoded);
    const view: TicketView = {
      sequenceNumber: readUint(m.require(T.SEQUENCE_NUMBER)),
      face,
      faceEncoded,
      usage: decodeUsageRecordContent(m.require(T.USAGE_RECORD)),
      cardSerial: m.bytes(T.CARD_SERIAL, 8, 8, 'card serial'),
      cardChallenge: m.get(T.CARD_CHALLENGE),
    };
    const tfv = m.get(T.VERIFICATION_CODE);
    if (tfv) {
      view.verificationCode = decodeVerificationCodeContent(tfv);
      this.checkVerificationCode(faceEncoded, view.verificationCode);
    }
    return view;
  }

  /** Key 6: TF_V must verify with one of the trusted authority keys. Throws CryptoError. */
  checkVerificationCode(faceEncoded: Uint8Array, tfv: VerificationCode): void {
    const authority = this.config.authorities.find((a) => equal(keyId(a), tfv.authorityKeyId));
    if (!authority) throw new CryptoError('TF_V names an authority key this terminal does not trust');
    if (tfv.suite !== SUITE[this.suiteName] || !this.suite.verify(authority, verificationCodeMessage(faceEncoded), tfv.signature)) {
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

  private async signedCommand(name: 'WRITE USAGE' | 'DELETE', view: TicketView, event: number | undefined): Promise<Receipt> {
    if (!view.cardChallenge) throw new InvalidInputError(`${name} needs a ticket from verifyTicket (it carries the card challenge)`);
    if (view.session) return this.macedCommand(name, view, event);
    const keys = this.pki(`${name} in gate mode pki`).keys;
    const body = concat(tlv(T.KEY_ID, keys.keyId), this.commandFields(view, event));
    const ins = command(name).insByte;
    const signature = keys.signature.sign(concat(SIGNATURE_CONTEXT.COMMAND, new Uint8Array([ins]), view.cardSerial, body));
    const signed = template(T.SIGNED_COMMAND, body, tlv(T.SIGNATURE, signature));
    view.cardChallenge = undefined; // spent, whatever the card answers
    const r = await this.session.send(name, { data: signed });
    const receipt = parseReceipt(r.data);
    if (!receipt.commandDigest || !equal(receipt.commandDigest, sha256(signed)) || receipt.tid !== view.face.tid || !equal(receipt.cardSerial, view.cardSerial)) {
      throw new CryptoError(`${name} receipt does not answer this command`);
    }
    const key = await this.cardSigningKey(view.cardSerial);
    if (!this.suite.verify(key, concat(SIGNATURE_CONTEXT.RECEIPT, receiptSignedBytes(receipt.encoded)), receipt.signature)) {
      throw new CryptoError(`${name} receipt signature does not verify: not a genuine card`);
    }
    if (receipt.usage) view.usage = receipt.usage;
    return receipt;
  }

  /** The fields both gate modes' WRITE USAGE / DELETE carry, in spec order, from C7 to CE. */
  private commandFields(view: TicketView, event: number | undefined): Uint8Array {
    return concat(
      tlv(T.CARD_CHALLENGE, view.cardChallenge!),
      tlv(T.TID, utf8(view.face.tid)),
      tlv(T.COUNTER, u16(view.usage.counter)),
      event !== undefined ? tlv(T.USAGE_EVENT, new Uint8Array([event])) : new Uint8Array(0),
      tlv(T.GATE_ID, utf8(this.config.gateId)),
      tlv(T.STATION, utf8(this.config.station)),
      tlv(T.TIME, u32(this.clock())),
    );
  }

  /** Sym mode: B6 MAC'd under the session, chained on the VERIFY answer; the receipt MAC chains on ours. */
  private async macedCommand(name: 'WRITE USAGE' | 'DELETE', view: TicketView, event: number | undefined): Promise<Receipt> {
    const session = view.session!;
    const body = this.commandFields(view, event);
    const mac = symCommandMac(session.macKey, session.chain, name, view.cardSerial, body);
    view.cardChallenge = undefined; // the session is spent, whatever the card answers
    view.session = undefined;
    const macedCommand = template(T.MACED_COMMAND, body, tlv(T.MAC, mac));
    const r = await this.session.send(name, { p1: 0x01, data: macedCommand });
    const receipt = parseReceipt(r.data);
    if (receipt.tid !== view.face.tid || !equal(receipt.cardSerial, view.cardSerial) || receipt.commandDigest || !receipt.mac) {
      throw new CryptoError(`${name} receipt does not answer this command`);
    }
    if (!checkSymReceiptMac(session.macKey, mac, receipt)) {
      throw new CryptoError(`${name} receipt MAC does not verify: not the card of this session`);
    }
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

  /** The card's receipt key, traced to the trust root once per card and cached. */
  async cardSigningKey(serial: Uint8Array): Promise<Uint8Array> {
    const k = hex(serial);
    let key = this.signingKeys.get(k);
    if (!key) {
      const { cardTrust } = this.pki('checking a card signature');
      const creds = { suite: cardTrust.suite, serial, signingCertificate: undefined as Uint8Array | undefined };
      if (cardTrust.needsSigningCertificate) {
        creds.signingCertificate = (await this.session.send('GET DATA', { p2: T.CARD_SIGNING_CERTIFICATE })).data;
      }
      key = cardTrust.signingKey(creds);
      this.signingKeys.set(k, key);
    }
    return key;
  }

  /**
   * One tap: select, find the ticket for today at this station, decide, record the entry or exit.
   * Never throws for card refusals: they become a REJECT with the reason.
   */
  async passGate(direction: Direction, options: { date?: number; train?: string; auditVerificationCode?: boolean } = {}): Promise<{ decision: GateDecision; ticket?: TicketView; receipt?: Receipt }> {
    const now = this.clock();
    const d = new Date(now * 1000);
    const date = options.date ?? d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
    let ticket: TicketView;
    try {
      await this.select();
      ticket = await this.verifyTicket({ date, train: options.train, station: this.config.station }, { verificationCode: options.auditVerificationCode ?? false });
    } catch (e) {
      return { decision: rejectFor(e) };
    }
    const decision = decide(ticket.face, ticket.usage, { direction, station: this.config.station, now });
    if (!decision.pass) return { decision, ticket };
    try {
      const receipt = await this.recordUsage(ticket, direction === 'entry' ? 'ENTRY' : 'EXIT');
      return { decision, ticket, receipt };
    } catch (e) {
      return { decision: rejectFor(e), ticket };
    }
  }
}

function rejectFor(e: unknown): GateDecision {
  if (e instanceof CardStatusError) {
    if (e.sw === SW.RECORD_NOT_FOUND) return reject('not_found');
    if (e.sw === SW.TICKET_VOID) return reject('void');
    return reject('card_error', `${e.command} ${e.sw.toString(16).toUpperCase()} ${e.swName}`);
  }
  if (e instanceof CryptoError) return reject('bad_signature', e.message);
  throw e;
}
