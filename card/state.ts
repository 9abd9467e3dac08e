// The applet's persistent state and its NVM image encoding (magic, version, checksum, TLV body).
// State objects are treated as immutable: a command builds the next state, the store commits its image.

import { createHash } from 'node:crypto';
import { concat, equal, fromUtf8, readUint, u16, u32, utf8 } from '../sdk/bytes.js';
import { LIMITS } from '../sdk/spec.js';
import { decodeTicketFace, decodeUsageRecordContent, encodeUsageRecord, type UsageRecord } from '../sdk/ticket.js';
import { TlvMap, template, tlv } from '../sdk/tlv.js';
import { NvmCorruptError } from './nvm.js';

export interface KeyEntry {
  id: Uint8Array;
  scopes: string[];
  key: Uint8Array;
}

/** A diversified checking key (gate mode sym): K_card for one operator, named by its master key's id. */
export interface SymKeyEntry {
  id: Uint8Array;
  operator: string;
  key: Uint8Array;
  /** K_priv (protocol version 2): masks the serial in sym answers. Absent in keys installed before: unusable then. */
  privacyKey?: Uint8Array;
}

export interface CardKeyPair {
  /** Suite-specific private encoding (RSA: PKCS#8 DER; SM9: see sdk/crypto/suites.ts). */
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface TicketRecord {
  seq: number;
  operator: string;
  tid: string;
  serviceDate: number;
  train: string;
  origin: string;
  destination: string;
  departure: number;
  issuedAt: number;
  maxEntries: number;
  /** Encoded A1 (TF_A) and A2 (TF_V), exactly as signed and loaded. */
  face: Uint8Array;
  tfv: Uint8Array;
  usage: UsageRecord;
}

export interface Tombstone {
  /** SHA-256(operator ‖ 00 ‖ TID), first 8 bytes: refuses a replayed LOAD. */
  ticketDigest: Uint8Array;
  /** SHA-256(TID), first 4 bytes: lets VERIFY by TID show a void view (DF22 02). */
  tidDigest: Uint8Array;
  issuedAt: number;
}

export interface CardState {
  serial: Uint8Array;
  suite: number;
  lifecycle: number;
  capacity: number;
  encKey?: CardKeyPair;
  signKey?: CardKeyPair;
  encCert?: Uint8Array;
  signCert?: Uint8Array;
  identity?: string;
  authorityKeys: KeyEntry[];
  terminalKeys: KeyEntry[];
  /** Absent in images written before gate mode sym existed; read as empty. */
  symKeys: SymKeyEntry[];
  tombstones: Tombstone[];
  /** Tickets issued at or before this time are refused: their tombstones may have been evicted. */
  tombstoneFloor: number;
  nextSeq: number;
  tickets: TicketRecord[];
  /**
   * Card time: the largest issue time of any ticket the card accepted (never a terminal's clock, so no terminal
   * can age the card's keys). A certified signing key whose certificate ended before it is retired for this card.
   */
  cardTime: number;
}

const MAGIC = utf8('ETKTCARD');
const IMAGE_VERSION = 1;
const TOMBSTONE_BYTES = 16;

export function ticketDigest(operator: string, tid: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(utf8(operator)).update(new Uint8Array([0])).update(utf8(tid)).digest().subarray(0, 8));
}

export function tidDigest(tid: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(utf8(tid)).digest().subarray(0, 4));
}

// Record encodings are cached: a WRITE USAGE re-encodes one record, not the whole card.
const recordCache = new WeakMap<TicketRecord, Uint8Array>();

function encodeRecord(r: TicketRecord): Uint8Array {
  let e = recordCache.get(r);
  if (!e) {
    e = template(0xe7, tlv(0xc8, u16(r.seq)), r.face, r.tfv, encodeUsageRecord(r.usage));
    recordCache.set(r, e);
  }
  return e;
}

// The personalised part (keys, certificates) never changes after LOCK, and a command copies the parts it
// leaves alone by reference: cache encodings by those arrays and objects.
const partCache = new WeakMap<object, Uint8Array>();

function cached(key: object, encode: () => Uint8Array): Uint8Array {
  let e = partCache.get(key);
  if (!e) {
    e = encode();
    partCache.set(key, e);
  }
  return e;
}

function encodeKeyEntries(tag: number, keys: KeyEntry[]): Uint8Array {
  return cached(keys, () => concat(...keys.map((k) => template(tag, tlv(0xc1, k.id), ...k.scopes.map((s) => tlv(0xc9, utf8(s))), tlv(0xd0, k.key)))));
}

function encodePair(tag: number, p?: CardKeyPair): Uint8Array | undefined {
  return p ? cached(p, () => template(tag, tlv(0x80, p.privateKey), tlv(0x81, p.publicKey))) : undefined;
}

const tombstoneCache = new WeakMap<object, { floor: number; encoded: Uint8Array }>();

function encodeTombstones(s: CardState): Uint8Array {
  const hit = tombstoneCache.get(s.tombstones);
  if (hit && hit.floor === s.tombstoneFloor) return hit.encoded;
  const encoded = encodeTombstoneArea(s);
  tombstoneCache.set(s.tombstones, { floor: s.tombstoneFloor, encoded });
  return encoded;
}

/** Tombstones occupy a fixed, preallocated area, so DELETE never needs memory. */
function encodeTombstoneArea(s: CardState): Uint8Array {
  const area = new Uint8Array(LIMITS.tombstoneSlots * TOMBSTONE_BYTES);
  s.tombstones.forEach((t, i) => {
    area.set(t.ticketDigest, i * 16);
    area.set(t.tidDigest, i * 16 + 8);
    area.set(u32(t.issuedAt), i * 16 + 12);
  });
  return template(0xe6, tlv(0x80, u32(s.tombstoneFloor)), tlv(0x81, u16(s.tombstones.length)), tlv(0x82, area));
}

export function encodeState(s: CardState): Uint8Array {
  const body = concat(
    tlv(0xc6, s.serial),
    tlv(0xd1, new Uint8Array([s.suite])),
    tlv(0xd7, new Uint8Array([s.lifecycle])),
    tlv(0xd8, u32(s.capacity)),
    tlv(0xc8, u16(s.nextSeq)),
    encodePair(0xe1, s.encKey) ?? new Uint8Array(0),
    encodePair(0xe2, s.signKey) ?? new Uint8Array(0),
    s.encCert ? cached(s.encCert, () => tlv(0xd5, s.encCert!)) : new Uint8Array(0),
    s.signCert ? cached(s.signCert, () => tlv(0xd6, s.signCert!)) : new Uint8Array(0),
    s.identity !== undefined ? tlv(0xdb, utf8(s.identity)) : new Uint8Array(0),
    encodeKeyEntries(0xe3, s.authorityKeys),
    encodeKeyEntries(0xe4, s.terminalKeys),
    cached(s.symKeys, () => concat(...s.symKeys.map((k) => template(0xe5, tlv(0xc1, k.id), tlv(0xc9, utf8(k.operator)), tlv(0xd0, k.key), k.privacyKey ? tlv(0xc2, k.privacyKey) : undefined)))),
    tlv(0xce, u32(s.cardTime)),
    encodeTombstones(s),
    ...s.tickets.map(encodeRecord),
  );
  const header = concat(MAGIC, new Uint8Array([IMAGE_VERSION]), u32(body.length));
  const digest = new Uint8Array(createHash('sha256').update(header).update(body).digest());
  return concat(header, digest, body);
}

const IMAGE_OVERHEAD = MAGIC.length + 1 + 4 + 32;

export function decodeState(image: Uint8Array): CardState {
  try {
    if (image.length < IMAGE_OVERHEAD || !equal(image.subarray(0, 8), MAGIC)) throw new Error('not an eticket card image');
    if (image[8] !== IMAGE_VERSION) throw new Error(`image version ${image[8]} not supported`);
    const len = readUint(image.subarray(9, 13));
    if (image.length !== IMAGE_OVERHEAD + len) throw new Error('image length does not match its header');
    const body = image.subarray(IMAGE_OVERHEAD);
    const digest = new Uint8Array(createHash('sha256').update(image.subarray(0, 13)).update(body).digest());
    if (!equal(digest, image.subarray(13, 45))) throw new Error('image checksum mismatch');
    const m = TlvMap.parse(body, { repeatable: [0xe3, 0xe4, 0xe5, 0xe7] });
    const pair = (tag: number): CardKeyPair | undefined => {
      const v = m.get(tag);
      if (!v) return undefined;
      const p = TlvMap.parse(v);
      return { privateKey: p.require(0x80).slice(), publicKey: p.require(0x81).slice() };
    };
    const keys = (tag: number): KeyEntry[] =>
      m.all(tag).map((v) => {
        const k = TlvMap.parse(v, { repeatable: [0xc9] });
        return { id: k.bytes(0xc1, 8, 8).slice(), scopes: k.all(0xc9).map(fromUtf8), key: k.require(0xd0).slice() };
      });
    const tomb = TlvMap.parse(m.require(0xe6));
    const area = tomb.require(0x82);
    const count = readUint(tomb.require(0x81));
    const tombstones: Tombstone[] = [];
    for (let i = 0; i < count; i++) {
      tombstones.push({
        ticketDigest: area.slice(i * 16, i * 16 + 8),
        tidDigest: area.slice(i * 16 + 8, i * 16 + 12),
        issuedAt: readUint(area.subarray(i * 16 + 12, i * 16 + 16)),
      });
    }
    const tickets = m.all(0xe7).map((v) => decodeRecord(v));
    return {
      serial: m.bytes(0xc6, 8, 8).slice(),
      suite: m.require(0xd1)[0],
      lifecycle: m.require(0xd7)[0],
      capacity: readUint(m.require(0xd8)),
      nextSeq: readUint(m.require(0xc8)),
      encKey: pair(0xe1),
      signKey: pair(0xe2),
      encCert: m.get(0xd5)?.slice(),
      signCert: m.get(0xd6)?.slice(),
      identity: m.has(0xdb) ? fromUtf8(m.require(0xdb)) : undefined,
      authorityKeys: keys(0xe3),
      terminalKeys: keys(0xe4),
      symKeys: m.all(0xe5).map((v) => {
        const k = TlvMap.parse(v);
        return { id: k.bytes(0xc1, 8, 8).slice(), operator: fromUtf8(k.require(0xc9)), key: k.bytes(0xd0, 16, 16).slice(), ...(k.has(0xc2) ? { privacyKey: k.bytes(0xc2, 16, 16).slice() } : {}) };
      }),
      tombstones,
      tombstoneFloor: readUint(tomb.require(0x80)),
      tickets,
      // Images written before protocol version 2 carry no card time: every ticket they hold or deleted was accepted.
      cardTime: m.has(0xce) ? readUint(m.require(0xce)) : Math.max(0, readUint(tomb.require(0x80)), ...tickets.map((t) => t.issuedAt), ...tombstones.map((t) => t.issuedAt)),
    };
  } catch (e) {
    throw new NvmCorruptError(`card image is corrupt: ${(e as Error).message}`, { cause: e });
  }
}

export function makeRecord(seq: number, face: Uint8Array, tfv: Uint8Array, usage: UsageRecord): TicketRecord {
  const f = decodeTicketFace(face);
  return {
    seq,
    operator: f.operator,
    tid: f.tid,
    serviceDate: f.serviceDate,
    train: f.train ?? '',
    origin: f.origin ?? '',
    destination: f.destination ?? '',
    departure: f.departure ?? 0,
    issuedAt: f.issuedAt,
    maxEntries: f.maxEntries ?? 1,
    face,
    tfv,
    usage,
  };
}

function decodeRecord(v: Uint8Array): TicketRecord {
  const m = TlvMap.parse(v);
  const items = m.items;
  const face = items.find((i) => i.tag === 0xa1);
  const tfv = items.find((i) => i.tag === 0xa2);
  if (!face || !tfv) throw new Error('ticket record incomplete');
  const faceEnc = tlv(0xa1, face.value);
  const r = makeRecord(readUint(m.require(0xc8)), faceEnc, tlv(0xa2, tfv.value), decodeUsageRecordContent(m.require(0xa3)));
  recordCache.set(r, tlv(0xe7, v));
  return r;
}
