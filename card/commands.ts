// The applet's commands (personalisation, GET DATA / GET CHALLENGE, and the patent's LOAD, READ, VERIFY,
// WRITE USAGE, DELETE). Each validates everything first, then commits one new state or refuses.

import { randomBytes } from 'node:crypto';
import type { CommandApdu } from '../sdk/apdu.js';
import { concat, constantTimeEqual, equal, fromUtf8 as decodeUtf8, readUint, u16, u32, utf8 } from '../sdk/bytes.js';
import { checkTerminalKey, decodeTerminalKey } from '../sdk/crypto/bundle.js';
import { EnvelopeError, open, seal } from '../sdk/crypto/envelope.js';
import { RsaPrivateKey, type RsaKeySize } from '../sdk/crypto/rsa.js';
import { keyId, sha256, type Decrypter, type Signer } from '../sdk/crypto/suite.js';
import { suiteProvider } from '../sdk/crypto/suites.js';
import { sm9Identity } from '../sdk/crypto/sm9-suite.js';
import { AID, LIFECYCLE, LIMITS, protocol, SUITE, SW, T, USAGE_EVENT, USAGE_STATE } from '../sdk/spec.js';
import {
  decodeTicketFace,
  decodeVerificationCodeContent,
  encodeUsageRecord,
  newUsageRecord,
  SIGNATURE_CONTEXT,
  USAGE_FLAG,
  verificationCodeMessage,
  type UsageRecord,
} from '../sdk/ticket.js';
import { TlvError, TlvMap, template, tlv } from '../sdk/tlv.js';
import { checkSessionMac, sessionEncrypt, sessionKeys, sessionMac, SYM_CONTEXT } from '../sdk/crypto/symmetric.js';
import { CardRefusal, type EticketCard, type SymSession } from './applet.js';
import { makeRecord, ticketDigest, tidDigest, type CardState, type KeyEntry, type TicketRecord } from './state.js';

const ANY_OPERATOR = '*';

// Loading a private key from its encoding is costly; keep loaded keys next to the bytes they came from.
const loadedSigners = new WeakMap<Uint8Array, Signer>();
const loadedDecrypters = new WeakMap<Uint8Array, Decrypter>();

// TextDecoder's TypeError carries a `code`, which the applet would report as MEMORY_FAILURE (6581):
// a text field that is not UTF-8 is malformed command data (6A80).
function fromUtf8(bytes: Uint8Array): string {
  try {
    return decodeUtf8(bytes);
  } catch {
    throw new TlvError('text field is not UTF-8');
  }
}

function refuse(sw: number, why = ''): never {
  throw new CardRefusal(sw, why);
}

function scopeAllows(entry: KeyEntry, operator: string): boolean {
  return entry.scopes.includes(ANY_OPERATOR) || entry.scopes.includes(operator);
}

export class CardCommands {
  constructor(private readonly card: EticketCard) {}

  private get s(): CardState {
    return this.card.persistent;
  }

  private get suite() {
    return suiteProvider(this.s.suite);
  }

  run(name: string, apdu: CommandApdu): Uint8Array {
    switch (name) {
      case 'GET CHALLENGE':
        return this.getChallenge(apdu);
      case 'GET DATA':
        return this.getData(apdu.p2);
      case 'GENERATE KEY':
        return this.generateKey(apdu.p1, apdu.p2);
      case 'PUT KEY':
        return this.putKey(apdu.p1, apdu.data);
      case 'PUT DATA':
        return this.putData(apdu.p2, apdu.data);
      case 'LOCK':
        return this.lock();
      case 'LOAD':
        return this.load(apdu.data);
      case 'READ':
        return this.read(apdu.p1, apdu.data);
      case 'VERIFY':
        return this.verify(apdu.p1, apdu.data);
      case 'WRITE USAGE':
      case 'DELETE': {
        // The pending challenge and session are spent by any attempt, so a refused command cannot be retried.
        const pending = { challenge: this.card.ram.challenge, session: this.card.ram.session };
        this.card.ram.challenge = null;
        this.card.ram.session = null;
        const isDelete = name === 'DELETE';
        return apdu.p1 === 0x01 ? this.symWriteUsageOrDelete(apdu.ins, apdu.data, isDelete, pending.session) : this.writeUsageOrDelete(apdu.ins, apdu.data, isDelete, pending.challenge);
      }
      default:
        return refuse(SW.INS_NOT_SUPPORTED);
    }
  }

  fci(): Uint8Array {
    return template(
      T.FCI,
      tlv(T.DF_NAME, AID),
      template(
        T.FCI_PROPRIETARY,
        tlv(T.CARD_SERIAL, this.s.serial),
        tlv(T.SUITE, new Uint8Array([this.s.suite])),
        tlv(T.LIFECYCLE, new Uint8Array([this.s.lifecycle])),
        tlv(T.PROTOCOL_VERSION, new Uint8Array([protocol.version])),
      ),
    );
  }

  private getChallenge(apdu: CommandApdu): Uint8Array {
    const n = LIMITS.challengeLength;
    if (apdu.ne !== undefined && apdu.ne !== n) refuse(SW.WRONG_LE_EXACT | n);
    this.card.ram.challenge = new Uint8Array(randomBytes(n));
    this.card.ram.session = null;
    return this.card.ram.challenge.slice();
  }

  private getData(tag: number): Uint8Array {
    const s = this.s;
    const some = (v: Uint8Array | undefined) => v ?? refuse(SW.REFERENCED_DATA_NOT_FOUND);
    switch (tag) {
      case T.CARD_SERIAL:
        return s.serial.slice();
      case T.SUITE:
        return new Uint8Array([s.suite]);
      case T.CARD_ENCRYPTION_PUBLIC_KEY:
        return some(s.encKey?.publicKey).slice();
      case T.CARD_SIGNING_PUBLIC_KEY:
        return some(s.signKey?.publicKey).slice();
      case T.CARD_ENCRYPTION_CERTIFICATE:
        return some(s.encCert).slice();
      case T.CARD_SIGNING_CERTIFICATE:
        return some(s.signCert).slice();
      case T.LIFECYCLE:
        return new Uint8Array([s.lifecycle]);
      case T.CAPACITY:
        return concat(u32(s.capacity), u32(Math.max(0, s.capacity - this.card.usedBytes)), u16(s.tickets.length), u16(s.tombstones.length));
      case T.INSTALLED_KEYS:
        return concat(
          ...s.authorityKeys.map((k) => concat(new Uint8Array([1]), k.id)),
          ...s.terminalKeys.map((k) => concat(new Uint8Array([2]), k.id)),
          ...s.symKeys.map((k) => concat(new Uint8Array([3]), k.id)),
        );
      case T.PROTOCOL_VERSION:
        return new Uint8Array([protocol.version]);
      case T.CARD_IDENTITY:
        return utf8(s.identity ?? refuse(SW.REFERENCED_DATA_NOT_FOUND));
      default:
        return refuse(SW.REFERENCED_DATA_NOT_FOUND);
    }
  }

  // ---- personalisation -------------------------------------------------------------------------

  private generateKey(p1: number, p2: number): Uint8Array {
    if (this.s.suite !== SUITE.rsa) refuse(SW.CONDITIONS_NOT_SATISFIED, 'SM9 keys come from the KGC (PUT KEY)');
    const bits: RsaKeySize = p2 === 0x01 ? 3072 : 2048;
    const key = RsaPrivateKey.generate(bits);
    const pair = { privateKey: key.toPkcs8(), publicKey: key.publicKey };
    const next = p1 === 0x01 ? { ...this.s, encKey: pair, encCert: undefined } : { ...this.s, signKey: pair, signCert: undefined };
    this.card.commit(next);
    return key.publicKey;
  }

  private putKey(p1: number, data: Uint8Array): Uint8Array {
    const s = this.s;
    if (p1 === 0x01 || p1 === 0x02) {
      const m = TlvMap.parse(data, { allowed: [T.KEY_ID, T.OPERATOR_SCOPE, T.KEY_MATERIAL], repeatable: [T.OPERATOR_SCOPE] });
      const id = m.bytes(T.KEY_ID, 8, 8, 'key id');
      const key = m.bytes(T.KEY_MATERIAL, 1, 2048, 'key');
      const scopes = m.all(T.OPERATOR_SCOPE).map((v) => {
        if (v.length < 1 || v.length > 16) throw new TlvError('operator scope length');
        return fromUtf8(v);
      });
      if (scopes.length === 0) throw new TlvError('at least one operator scope is required');
      try {
        if (p1 === 0x01) this.suite.suite.checkPublicKey(key);
        else checkTerminalKey(this.suite.suite, key);
      } catch {
        refuse(SW.INCORRECT_DATA, 'not a public key of this suite');
      }
      if (!equal(keyId(key), id)) refuse(SW.INCORRECT_DATA, 'key id does not match the key');
      const list = p1 === 0x01 ? s.authorityKeys : s.terminalKeys;
      if (list.some((k) => equal(k.id, id))) refuse(SW.ALREADY_EXISTS);
      const max = p1 === 0x01 ? LIMITS.maxAuthorityKeys : LIMITS.maxTerminalKeys;
      if (list.length >= max) refuse(SW.NOT_ENOUGH_MEMORY, 'key table full');
      const entry: KeyEntry = { id: id.slice(), scopes, key: key.slice() };
      this.card.commit(p1 === 0x01 ? { ...s, authorityKeys: [...list, entry] } : { ...s, terminalKeys: [...list, entry] });
      return new Uint8Array(0);
    }
    if (p1 === 0x05) return this.putSymKey(data);
    // P1 03 / 04: SM9 private keys extracted by the key generation centre.
    if (s.suite !== SUITE.sm9) refuse(SW.CONDITIONS_NOT_SATISFIED, 'RSA card keys are generated on the card');
    const m = TlvMap.parse(data, { allowed: [T.KEY_MATERIAL] });
    const priv = m.bytes(T.KEY_MATERIAL, 1, 2048, 'private key');
    let pub: Uint8Array;
    try {
      pub = p1 === 0x03 ? this.suite.decrypter(priv).publicKey : this.suite.signer(priv).publicKey;
    } catch {
      return refuse(SW.INCORRECT_DATA, 'not a private key of this suite');
    }
    // apdu-spec 2.1: the key must belong to this card's identity, else the card would seal and sign as another card.
    if (s.identity !== undefined && sm9Identity(pub) !== s.identity) refuse(SW.INCORRECT_DATA, 'key of another identity');
    const pair = { privateKey: priv.slice(), publicKey: pub };
    this.card.commit(p1 === 0x03 ? { ...s, encKey: pair } : { ...s, signKey: pair });
    return new Uint8Array(0);
  }

  /** A diversified key cannot be checked against its id (the card never sees the master key): the issuer vouches. */
  private putSymKey(data: Uint8Array): Uint8Array {
    const s = this.s;
    const m = TlvMap.parse(data, { allowed: [T.KEY_ID, T.OPERATOR_SCOPE, T.KEY_MATERIAL] });
    if (m.items.map((i) => i.tag).join() !== [T.KEY_ID, T.OPERATOR_SCOPE, T.KEY_MATERIAL].join()) throw new TlvError('C1, C9, D0 expected in order');
    const id = m.bytes(T.KEY_ID, 8, 8, 'key id');
    const operator = fromUtf8(m.bytes(T.OPERATOR_SCOPE, 1, 16, 'operator'));
    if (operator === ANY_OPERATOR) throw new TlvError('a diversified key belongs to one named operator');
    const key = m.bytes(T.KEY_MATERIAL, 16, 16, 'AES-128 key');
    if (s.symKeys.some((k) => equal(k.id, id))) refuse(SW.ALREADY_EXISTS);
    if (s.symKeys.length >= LIMITS.maxSymmetricKeys) refuse(SW.NOT_ENOUGH_MEMORY, 'key table full');
    this.card.commit({ ...s, symKeys: [...s.symKeys, { id: id.slice(), operator, key: key.slice() }] });
    return new Uint8Array(0);
  }

  private putData(p2: number, data: Uint8Array): Uint8Array {
    const s = this.s;
    if (p2 === T.CARD_IDENTITY) {
      if (s.suite !== SUITE.sm9) refuse(SW.CONDITIONS_NOT_SATISFIED);
      if (data.length > 64) refuse(SW.INCORRECT_DATA);
      let identity: string;
      try {
        identity = fromUtf8(data);
      } catch {
        return refuse(SW.INCORRECT_DATA);
      }
      // Keys installed before the identity must be its keys too (either order of personalisation is allowed).
      if ([s.encKey, s.signKey].some((k) => k && sm9Identity(k.publicKey) !== identity)) refuse(SW.INCORRECT_DATA, 'identity of other keys');
      this.card.commit({ ...s, identity });
      return new Uint8Array(0);
    }
    // Certificates: the card checks only that it holds a DER SEQUENCE; the CA chain is the host's business.
    if (data[0] !== 0x30 || data.length < 16) refuse(SW.INCORRECT_DATA, 'not a DER certificate');
    this.card.commit(p2 === T.CARD_ENCRYPTION_CERTIFICATE ? { ...s, encCert: data.slice() } : { ...s, signCert: data.slice() });
    return new Uint8Array(0);
  }

  private lock(): Uint8Array {
    const s = this.s;
    const complete =
      s.encKey && s.signKey && s.authorityKeys.length > 0 && (s.terminalKeys.length > 0 || s.symKeys.length > 0) && (s.suite !== SUITE.sm9 || s.identity !== undefined);
    if (!complete) refuse(SW.CONDITIONS_NOT_SATISFIED, 'personalisation incomplete');
    this.card.commit({ ...s, lifecycle: LIFECYCLE.OPERATIONAL });
    return new Uint8Array(0);
  }

  // ---- keys ------------------------------------------------------------------------------------

  private decrypter(): Decrypter {
    const k = this.s.encKey!;
    let d = loadedDecrypters.get(k.privateKey);
    if (!d) {
      d = this.suite.decrypter(k.privateKey);
      loadedDecrypters.set(k.privateKey, d);
    }
    return d;
  }

  private signer(): Signer {
    const k = this.s.signKey!;
    let sg = loadedSigners.get(k.privateKey);
    if (!sg) {
      sg = this.suite.signer(k.privateKey);
      loadedSigners.set(k.privateKey, sg);
    }
    return sg;
  }

  private terminalKey(id: Uint8Array): KeyEntry {
    return this.s.terminalKeys.find((k) => equal(k.id, id)) ?? refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'unknown terminal key');
  }

  // ---- LOAD (patent 611-614) -----------------------------------------------------------------------

  private load(data: Uint8Array): Uint8Array {
    const s = this.s;
    let plaintext: Uint8Array;
    try {
      plaintext = open(this.decrypter(), s.suite, s.serial, data);
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      refuse(e.reason === 'format' ? SW.INCORRECT_DATA : e.reason === 'recipient' ? SW.TICKET_NOT_FOR_THIS_CARD : SW.INCORRECT_SM_DATA_OBJECTS);
    }
    const items = TlvMap.parse(plaintext, { allowed: [T.TICKET_FACE, T.VERIFICATION_CODE] });
    if (items.items.length !== 2 || items.items[0].tag !== T.TICKET_FACE) throw new TlvError('payload must be TF_A then TF_V');
    const faceEnc = tlv(T.TICKET_FACE, items.require(T.TICKET_FACE));
    const tfvEnc = tlv(T.VERIFICATION_CODE, items.require(T.VERIFICATION_CODE));
    const face = decodeTicketFace(faceEnc);
    const tfv = decodeVerificationCodeContent(items.require(T.VERIFICATION_CODE));
    if (tfv.suite !== s.suite) refuse(SW.TICKET_SIGNATURE_INVALID, 'TF_V of another suite');
    const authority = s.authorityKeys.find((k) => equal(k.id, tfv.authorityKeyId) && scopeAllows(k, face.operator));
    if (!authority) refuse(SW.REFERENCED_DATA_NOT_FOUND, 'no authority key for this ticket');
    if (!this.suite.suite.verify(authority.key, verificationCodeMessage(faceEnc), tfv.signature)) refuse(SW.TICKET_SIGNATURE_INVALID);
    if (s.tickets.some((t) => t.operator === face.operator && t.tid === face.tid)) refuse(SW.ALREADY_EXISTS);
    const digest = ticketDigest(face.operator, face.tid);
    if (face.issuedAt <= s.tombstoneFloor || s.tombstones.some((t) => equal(t.ticketDigest, digest))) refuse(SW.TICKET_REPLAYED);
    const seq = this.allocateSeq();
    const record = makeRecord(seq, faceEnc, tfvEnc, newUsageRecord());
    this.card.commit({ ...s, tickets: [...s.tickets, record], nextSeq: seq === 0xffff ? 1 : seq + 1 });
    return concat(tlv(T.SEQUENCE_NUMBER, u16(seq)), tlv(T.TID, utf8(face.tid)));
  }

  private allocateSeq(): number {
    const used = new Set(this.s.tickets.map((t) => t.seq));
    let seq = this.s.nextSeq;
    while (used.has(seq)) seq = seq === 0xffff ? 1 : seq + 1;
    return seq;
  }

  // ---- READ (621-622) and VERIFY (631-635) ----------------------------------------------------------

  private parseQuery(data: Uint8Array, verify: boolean, sym = false) {
    const allowed = verify
      ? [T.KEY_ID, T.TERMINAL_CHALLENGE, T.TID, T.SERVICE_DATE, T.TRAIN, T.STATION]
      : [T.KEY_ID, T.TERMINAL_CHALLENGE, T.SERVICE_DATE, T.TRAIN];
    const m = TlvMap.parse(data, { allowed });
    const keyIdBytes = m.bytes(T.KEY_ID, 8, 8, 'terminal key id');
    const challenge = verify || m.has(T.TERMINAL_CHALLENGE) ? m.bytes(T.TERMINAL_CHALLENGE, 16, 16, 'terminal challenge') : undefined;
    const text = (tag: number) => {
      const v = m.get(tag);
      if (v === undefined) return undefined;
      if (v.length < 1 || v.length > 32) throw new TlvError('text field length');
      return fromUtf8(v);
    };
    const date = m.has(T.SERVICE_DATE) ? readUint(m.bytes(T.SERVICE_DATE, 4, 4, 'date')) : undefined;
    const tid = text(T.TID);
    const train = text(T.TRAIN);
    const station = text(T.STATION);
    if (verify && (tid === undefined) === (date === undefined)) throw new TlvError('VERIFY needs a TID, or a date');
    if (verify && tid !== undefined && (train !== undefined || station !== undefined)) throw new TlvError('TID excludes other criteria');
    if (sym) {
      const symKey = this.s.symKeys.find((k) => equal(k.id, keyIdBytes)) ?? refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'unknown diversified key');
      return { terminal: undefined, symKey, challenge, date, tid, train, station };
    }
    return { terminal: this.terminalKey(keyIdBytes), symKey: undefined, challenge, date, tid, train, station };
  }

  private viewPlaintext(record: TicketRecord, extra: Uint8Array[]): Uint8Array {
    return template(T.TICKET_VIEW, tlv(T.SEQUENCE_NUMBER, u16(record.seq)), record.face, concat(...extra.filter((e) => e.length)), tlv(T.CARD_SERIAL, this.s.serial));
  }

  private sealView(terminal: KeyEntry, record: TicketRecord, extra: Uint8Array[]): Uint8Array {
    return seal(this.suite.suite, decodeTerminalKey(terminal.key).encryption, terminal.id, this.viewPlaintext(record, extra));
  }

  private read(p1: number, data: Uint8Array): Uint8Array {
    const q = this.parseQuery(data, false);
    const terminal = q.terminal!;
    const queryKey = Buffer.from(data).toString('hex');
    const cursor = this.card.ram.readCursor;
    if (p1 === 0x01 && (!cursor || cursor.query !== queryKey)) refuse(SW.CONDITIONS_NOT_SATISFIED, 'READ next without READ first');
    const after = p1 === 0x01 ? cursor!.lastSeq : -1;
    const matches = this.sorted(
      this.s.tickets.filter(
        (t) => scopeAllows(terminal, t.operator) && (q.date === undefined || t.serviceDate >= q.date) && (q.train === undefined || t.train === q.train),
      ),
    );
    const idx = after < 0 ? 0 : matches.findIndex((t) => t.seq === after) + 1;
    const record = idx > 0 || after < 0 ? matches[idx] : undefined;
    if (!record) {
      this.card.ram.readCursor = null;
      refuse(SW.RECORD_NOT_FOUND);
    }
    this.card.ram.readCursor = { query: queryKey, lastSeq: record.seq };
    return this.sealView(terminal, record, [
      encodeUsageRecord(record.usage),
      q.challenge ? tlv(T.TERMINAL_CHALLENGE, q.challenge) : new Uint8Array(0),
    ]);
  }

  /** Tickets in travel order: service date, departure, then load order. */
  private sorted(list: TicketRecord[]): TicketRecord[] {
    return [...list].sort((a, b) => a.serviceDate - b.serviceDate || a.departure - b.departure || a.seq - b.seq);
  }

  private verify(p1: number, data: Uint8Array): Uint8Array {
    const sym = (p1 & 0x02) !== 0;
    const q = this.parseQuery(data, true, sym);
    const visible = this.s.tickets.filter((t) => (q.symKey ? t.operator === q.symKey.operator : scopeAllows(q.terminal!, t.operator)));
    let record: TicketRecord | undefined;
    if (q.tid !== undefined) {
      record = visible.find((t) => t.tid === q.tid);
      if (!record && this.s.tombstones.some((t) => equal(t.tidDigest, tidDigest(q.tid!)))) refuse(SW.TICKET_VOID);
    } else {
      record = this.sorted(
        visible.filter(
          (t) =>
            t.serviceDate === q.date &&
            (q.train === undefined || t.train === q.train) &&
            (q.station === undefined || t.origin === q.station || t.destination === q.station),
        ),
      )[0];
    }
    if (!record) refuse(SW.RECORD_NOT_FOUND);
    const challenge = new Uint8Array(randomBytes(LIMITS.challengeLength));
    const extra = [encodeUsageRecord(record.usage), tlv(T.TERMINAL_CHALLENGE, q.challenge!), tlv(T.CARD_CHALLENGE, challenge), p1 & 0x01 ? record.tfv : new Uint8Array(0)];
    this.card.ram.challenge = null;
    this.card.ram.session = null;
    if (!q.symKey) {
      this.card.ram.challenge = challenge;
      return this.sealView(q.terminal!, record, extra);
    }
    // Gate mode sym: the view is encrypted and MAC'd under keys both challenges derive from K_card.
    const keys = sessionKeys(q.symKey.key, q.challenge!, challenge);
    const head = concat(tlv(T.CARD_SERIAL, this.s.serial), tlv(T.CARD_CHALLENGE, challenge), tlv(0x85, sessionEncrypt(keys.enc, this.viewPlaintext(record, extra))));
    const mac = sessionMac(keys.mac, SYM_CONTEXT.VIEW, new Uint8Array(0), head);
    this.card.ram.session = { key: q.symKey, cardChallenge: challenge, macKey: keys.mac, chain: mac };
    return template(T.SESSION_VIEW, head, tlv(T.MAC, mac));
  }

  // ---- WRITE USAGE (641-643) and DELETE (651-653) ---------------------------------------------------

  private writeUsageOrDelete(ins: number, data: Uint8Array, isDelete: boolean, pendingChallenge: Uint8Array | null): Uint8Array {
    const s = this.s;
    const outer = TlvMap.parse(data, { allowed: [T.SIGNED_COMMAND] });
    const content = outer.require(T.SIGNED_COMMAND);
    const fieldTags = isDelete
      ? [T.KEY_ID, T.CARD_CHALLENGE, T.TID, T.COUNTER, T.GATE_ID, T.STATION, T.TIME, T.SIGNATURE]
      : [T.KEY_ID, T.CARD_CHALLENGE, T.TID, T.COUNTER, T.USAGE_EVENT, T.GATE_ID, T.STATION, T.TIME, T.SIGNATURE];
    const m = TlvMap.parse(content, { allowed: fieldTags });
    if (m.items.map((i) => i.tag).join() !== fieldTags.join()) throw new TlvError('signed command fields missing or out of order');
    const terminal = this.terminalKey(m.bytes(T.KEY_ID, 8, 8, 'key id'));
    const f = commandFields(m, isDelete);
    const signature = m.bytes(T.SIGNATURE, 1, 1024, 'signature');
    const signedPart = content.subarray(0, content.length - tlv(T.SIGNATURE, signature).length);
    const message = concat(SIGNATURE_CONTEXT.COMMAND, new Uint8Array([ins]), s.serial, signedPart);
    if (!this.suite.suite.verify(decodeTerminalKey(terminal.key).signature, message, signature)) refuse(SW.COMMAND_SIGNATURE_INVALID);
    if (!pendingChallenge || !constantTimeEqual(pendingChallenge, f.challenge)) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'challenge missing or spent');
    const receipt = concat(this.apply(f, isDelete, (op) => scopeAllows(terminal, op)), tlv(T.COMMAND_DIGEST, sha256(data)));
    const sig = this.signer().sign(concat(SIGNATURE_CONTEXT.RECEIPT, receipt));
    return template(T.RECEIPT, receipt, tlv(T.SIGNATURE, sig));
  }

  /** Gate mode sym: the session MAC, chained on the VERIFY answer, authenticates the terminal and the command. */
  private symWriteUsageOrDelete(ins: number, data: Uint8Array, isDelete: boolean, session: SymSession | null): Uint8Array {
    const outer = TlvMap.parse(data, { allowed: [T.MACED_COMMAND] });
    const content = outer.require(T.MACED_COMMAND);
    const fieldTags = isDelete
      ? [T.CARD_CHALLENGE, T.TID, T.COUNTER, T.GATE_ID, T.STATION, T.TIME, T.MAC]
      : [T.CARD_CHALLENGE, T.TID, T.COUNTER, T.USAGE_EVENT, T.GATE_ID, T.STATION, T.TIME, T.MAC];
    const m = TlvMap.parse(content, { allowed: fieldTags });
    if (m.items.map((i) => i.tag).join() !== fieldTags.join()) throw new TlvError('command fields missing or out of order');
    const f = commandFields(m, isDelete);
    const mac = m.bytes(T.MAC, LIMITS.symmetricMacLength, LIMITS.symmetricMacLength, 'MAC');
    if (!session || !constantTimeEqual(session.cardChallenge, f.challenge)) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'no session, or another session');
    const macedPart = content.subarray(0, content.length - tlv(T.MAC, mac).length);
    if (!checkSessionMac(session.macKey, mac, SYM_CONTEXT.COMMAND, session.chain, new Uint8Array([ins]), this.s.serial, macedPart)) {
      refuse(SW.COMMAND_SIGNATURE_INVALID);
    }
    const receipt = this.apply(f, isDelete, (op) => op === session.key.operator);
    return template(T.RECEIPT, receipt, tlv(T.MAC, sessionMac(session.macKey, SYM_CONTEXT.RECEIPT, mac, receipt)));
  }

  /** The authenticated part of WRITE USAGE / DELETE: find the ticket, check the counter, commit; receipt fields out. */
  private apply(f: CommandFields, isDelete: boolean, allowed: (operator: string) => boolean): Uint8Array {
    const s = this.s;
    const record = s.tickets.find((t) => t.tid === f.tid && allowed(t.operator));
    if (!record) {
      if (s.tickets.some((t) => t.tid === f.tid)) refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'terminal not authorised for this operator');
      if (s.tombstones.some((t) => equal(t.tidDigest, tidDigest(f.tid)))) refuse(SW.TICKET_VOID);
      refuse(SW.RECORD_NOT_FOUND);
    }
    if (f.counter !== record.usage.counter) refuse(SW.COUNTER_MISMATCH);
    if (f.counter === 0xffff) refuse(SW.CONDITIONS_NOT_SATISFIED, 'counter exhausted');
    let usage: UsageRecord | undefined;
    if (isDelete) {
      const tombstones = [...s.tombstones, { ticketDigest: ticketDigest(record.operator, record.tid), tidDigest: tidDigest(record.tid), issuedAt: record.issuedAt }];
      let floor = s.tombstoneFloor;
      while (tombstones.length > LIMITS.tombstoneSlots) floor = Math.max(floor, tombstones.shift()!.issuedAt);
      this.card.commit({ ...s, tickets: s.tickets.filter((t) => t !== record), tombstones, tombstoneFloor: floor });
    } else {
      usage = applyEvent(record, f.event, f.gate, f.station, f.time);
      this.card.commit({ ...s, tickets: s.tickets.map((t) => (t === record ? { ...record, usage: usage! } : t)) });
    }
    return concat(
      tlv(T.CARD_SERIAL, s.serial),
      tlv(T.TID, utf8(f.tid)),
      tlv(T.USAGE_EVENT, new Uint8Array([f.event])),
      tlv(T.COUNTER, u16(f.counter + 1)),
      usage ? encodeUsageRecord(usage) : new Uint8Array(0),
    );
  }
}

interface CommandFields {
  challenge: Uint8Array;
  tid: string;
  counter: number;
  event: number;
  gate: string;
  station: string;
  time: number;
}

/** The fields B3 and B6 share, range-checked. */
function commandFields(m: TlvMap, isDelete: boolean): CommandFields {
  const f: CommandFields = {
    challenge: m.bytes(T.CARD_CHALLENGE, LIMITS.challengeLength, LIMITS.challengeLength, 'card challenge'),
    tid: fromUtf8(m.bytes(T.TID, 1, 32, 'TID')),
    counter: readUint(m.bytes(T.COUNTER, 2, 2, 'counter')),
    event: isDelete ? USAGE_EVENT.DELETED : m.bytes(T.USAGE_EVENT, 1, 1, 'event')[0],
    gate: fromUtf8(m.bytes(T.GATE_ID, 1, 16, 'gate id')),
    station: fromUtf8(m.bytes(T.STATION, 1, 16, 'station')),
    time: readUint(m.bytes(T.TIME, 4, 4, 'time')),
  };
  if (!isDelete && ![USAGE_EVENT.ENTRY, USAGE_EVENT.TEMPORARY_EXIT, USAGE_EVENT.EXIT, USAGE_EVENT.PUNCH, USAGE_EVENT.PAPER_PRINTED].includes(f.event)) {
    throw new TlvError(`unknown usage event ${f.event}`);
  }
  return f;
}

/** The card's usage state machine (apdu-spec usageEvents): the card is the backstop for the gate. */
function applyEvent(r: TicketRecord, event: number, gate: string, station: string, time: number): UsageRecord {
  const u = r.usage;
  const next: UsageRecord = { ...u, lastGate: gate, lastStation: station, lastTime: time, counter: u.counter + 1 };
  switch (event) {
    case USAGE_EVENT.ENTRY:
      if (u.state === USAGE_STATE.TEMPORARY_EXIT) next.state = USAGE_STATE.INSIDE;
      else if ((u.state === USAGE_STATE.NEW || u.state === USAGE_STATE.EXITED) && u.entries < r.maxEntries && u.entries < 255) {
        next.state = USAGE_STATE.INSIDE;
        next.entries = u.entries + 1;
      } else refuse(SW.CONDITIONS_NOT_SATISFIED, 'entry not allowed now');
      break;
    case USAGE_EVENT.TEMPORARY_EXIT:
      if (u.state !== USAGE_STATE.INSIDE || u.temporaryExits >= 255) refuse(SW.CONDITIONS_NOT_SATISFIED, 'not inside');
      next.state = USAGE_STATE.TEMPORARY_EXIT;
      next.temporaryExits = u.temporaryExits + 1;
      break;
    case USAGE_EVENT.EXIT:
      if (u.state !== USAGE_STATE.INSIDE) refuse(SW.CONDITIONS_NOT_SATISFIED, 'not inside');
      next.state = USAGE_STATE.EXITED;
      break;
    case USAGE_EVENT.PUNCH:
      next.flags = u.flags | USAGE_FLAG.PUNCHED;
      break;
    case USAGE_EVENT.PAPER_PRINTED:
      next.flags = u.flags | USAGE_FLAG.PAPER_PRINTED;
      break;
  }
  return next;
}
