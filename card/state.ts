// The applet's persistent state and its NVM image encoding (magic, version, checksums, TLV body; apdu-spec README §6).
// State objects are treated as immutable: a command builds the next state, the store commits its image.

import { createHash, hash } from 'node:crypto';
import { concat, equal, fromUtf8, readUint, u16, u32, utf8 } from '../sdk/bytes.js';
import { LIMITS } from '../sdk/spec.js';
import { decodeTicketFace, decodeUsageRecordContent, encodeUsageRecord, type UsageRecord } from '../sdk/ticket.js';
import { decodeOne, TlvMap, template, tlv, type Tlv } from '../sdk/tlv.js';
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
  /** End of validity (from the face): how long a pass matches VERIFY by date. */
  validUntil: number;
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
/** Magic, version, body length, SHA-256 (version 1: of header and body; version 2: of header and the body before the records). */
const IMAGE_OVERHEAD = MAGIC.length + 1 + 4 + 32;
/**
 * Version 2 (written): each ticket record (E7) is followed by its own checksum (DE, SHA-256 of the E7 TLV), and the
 * header's covers the rest, so a usage update hashes its record, not the image. Version 1 (one SHA-256 over header
 * and body) is still read; its first commit writes version 2 (the whole image, under the journal).
 */
const IMAGE_VERSION = 2;
const IMAGE_VERSION_1 = 1;
/** Record checksum (image version 2): a private image tag, unused by the protocol. */
const RECORD_CHECKSUM = 0xde;
/** DE 20 ‖ 32 bytes. */
const RECORD_CHECKSUM_BYTES = 2 + 32;
const TOMBSTONE_BYTES = 16;

export function ticketDigest(operator: string, tid: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(utf8(operator)).update(new Uint8Array([0])).update(utf8(tid)).digest().subarray(0, 8));
}

export function tidDigest(tid: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(utf8(tid)).digest().subarray(0, 4));
}

// Encodings are cached by the objects they encode, as views of the card image they were read from or written to:
// a command that changes one record re-encodes that record, and the parts it left alone cost a copy, not an encoding.
const recordCache = new WeakMap<TicketRecord, Uint8Array>();
const usageCache = new WeakMap<UsageRecord, Uint8Array>();

/** A3 of a usage record, encoded once per record object (VERIFY's view, the image and the receipt all need it). */
export function encodedUsage(u: UsageRecord): Uint8Array {
  let e = usageCache.get(u);
  if (!e) {
    e = encodeUsageRecord(u);
    usageCache.set(u, e);
  }
  return e;
}

/** A record as image version 2 keeps it: E7 and its checksum DE right after it. */
function encodeRecord(r: TicketRecord): Uint8Array {
  let e = recordCache.get(r);
  if (!e) {
    const rec = template(0xe7, tlv(0xc8, u16(r.seq)), r.face, r.tfv, encodedUsage(r.usage));
    e = new Uint8Array(rec.length + RECORD_CHECKSUM_BYTES);
    e.set(rec, 0);
    e[rec.length] = RECORD_CHECKSUM;
    e[rec.length + 1] = 32;
    e.set(hash('sha256', rec, 'buffer') as unknown as Uint8Array, rec.length + 2);
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

function encodeSymKeys(keys: SymKeyEntry[]): Uint8Array {
  return cached(keys, () => concat(...keys.map((k) => template(0xe5, tlv(0xc1, k.id), tlv(0xc9, utf8(k.operator)), tlv(0xd0, k.key), k.privacyKey ? tlv(0xc2, k.privacyKey) : undefined))));
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

const NOTHING = new Uint8Array(0);

/** The parts of the image body before the records, in image order (the header's checksum covers them). */
function headParts(s: CardState): Uint8Array[] {
  return [
    tlv(0xc6, s.serial),
    tlv(0xd1, new Uint8Array([s.suite])),
    tlv(0xd7, new Uint8Array([s.lifecycle])),
    tlv(0xd8, u32(s.capacity)),
    tlv(0xc8, u16(s.nextSeq)),
    encodePair(0xe1, s.encKey) ?? NOTHING,
    encodePair(0xe2, s.signKey) ?? NOTHING,
    s.encCert ? cached(s.encCert, () => tlv(0xd5, s.encCert!)) : NOTHING,
    s.signCert ? cached(s.signCert, () => tlv(0xd6, s.signCert!)) : NOTHING,
    s.identity !== undefined ? tlv(0xdb, utf8(s.identity)) : NOTHING,
    encodeKeyEntries(0xe3, s.authorityKeys),
    encodeKeyEntries(0xe4, s.terminalKeys),
    encodeSymKeys(s.symKeys),
    tlv(0xce, u32(s.cardTime)),
    encodeTombstones(s),
  ];
}

function totalLength(parts: Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** A buffer of `n` bytes not zeroed first: every byte of it is written by its caller. */
function unfilled(n: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
}

/** Copy `parts` into `out` from `o`; parts that lie one after the other in one buffer (the records of the image before) in one go. */
function copyParts(out: Uint8Array, o: number, parts: Uint8Array[]): number {
  for (let i = 0; i < parts.length; ) {
    const p = parts[i];
    let end = p.byteOffset + p.length;
    let j = i + 1;
    while (j < parts.length && parts[j].buffer === p.buffer && parts[j].byteOffset === end && parts[j].length > 0) end += parts[j++].length;
    out.set(j === i + 1 ? p : new Uint8Array(p.buffer, p.byteOffset, end - p.byteOffset), o);
    o += end - p.byteOffset;
    i = j;
  }
  return o;
}

/** Magic, version and a body of `bodyLength` bytes into `image`, the head parts after them, and the checksum over both. */
function fillHead(image: Uint8Array, head: Uint8Array[], bodyLength: number): number {
  image.set(MAGIC, 0);
  image[8] = IMAGE_VERSION;
  image.set(u32(bodyLength), 9);
  const recordsAt = copyParts(image, IMAGE_OVERHEAD, head);
  image.set(createHash('sha256').update(image.subarray(0, 13)).update(image.subarray(IMAGE_OVERHEAD, recordsAt)).digest(), 13);
  return recordsAt;
}

/** The whole image (version 2): header, SHA-256 over header and the body before the records, body; sized once, written once. */
export function encodeState(s: CardState): Uint8Array {
  const head = headParts(s);
  const records = s.tickets.map(encodeRecord);
  const headLength = totalLength(head);
  const recordBytes = totalLength(records);
  const image = unfilled(IMAGE_OVERHEAD + headLength + recordBytes);
  copyParts(image, fillHead(image, head, headLength + recordBytes), records);
  return image;
}

/** One TLV of the image with where it lies: `value` is a view of the image, `start`/`end` bound the whole TLV. */
interface Item extends Tlv {
  start: number;
  end: number;
}

/** The TLVs between `start` and `end` of `image`, as views (strict: decodeOne's checks). */
function itemsOf(image: Uint8Array, start: number, end: number): Item[] {
  const area = image.subarray(start, end);
  const out: Item[] = [];
  for (let o = 0; o < area.length; ) {
    const { tlv: t, next } = decodeOne(area, o);
    out.push({ tag: t.tag, value: t.value, start: start + o, end: start + next });
    o = next;
  }
  return out;
}

/** The items of a constructed item's value. */
function childrenOf(image: Uint8Array, item: Item): Item[] {
  return itemsOf(image, item.end - item.value.length, item.end);
}

/** Where a ticket record (E7), its usage record (A3) and its checksum lie in an image: what a same-length usage update rewrites. */
interface RecordPlace {
  image: Uint8Array;
  recordStart: number;
  recordEnd: number;
  usageStart: number;
  usageEnd: number;
}

const recordPlaces = new WeakMap<TicketRecord, RecordPlace>();

/**
 * The top-level items of an image, checked (magic, version, length, checksums), without the record checksums.
 * Version 2: the records come last, each followed by its checksum, and nothing else follows them.
 */
function bodyItems(image: Uint8Array): Item[] {
  if (image.length < IMAGE_OVERHEAD || !equal(image.subarray(0, 8), MAGIC)) throw new Error('not an eticket card image');
  const version = image[8];
  if (version !== IMAGE_VERSION && version !== IMAGE_VERSION_1) throw new Error(`image version ${version} not supported`);
  const len = readUint(image.subarray(9, 13));
  if (image.length !== IMAGE_OVERHEAD + len) throw new Error('image length does not match its header');
  const items = itemsOf(image, IMAGE_OVERHEAD, image.length);
  if (version === IMAGE_VERSION_1) {
    const digest = createHash('sha256').update(image.subarray(0, 13)).update(image.subarray(IMAGE_OVERHEAD)).digest();
    if (!equal(digest, image.subarray(13, 45))) throw new Error('image checksum mismatch');
    return items;
  }
  let first = items.findIndex((i) => i.tag === 0xe7);
  if (first < 0) first = items.length;
  const recordsAt = first < items.length ? items[first].start : image.length;
  const digest = createHash('sha256').update(image.subarray(0, 13)).update(image.subarray(IMAGE_OVERHEAD, recordsAt)).digest();
  if (!equal(digest, image.subarray(13, 45))) throw new Error('image checksum mismatch');
  const out = items.slice(0, first);
  if (out.some((i) => i.tag === RECORD_CHECKSUM)) throw new Error('record checksum outside the records');
  for (let k = first; k < items.length; k += 2) {
    const rec = items[k];
    const sum = items[k + 1];
    if (rec.tag !== 0xe7) throw new Error('only ticket records may follow the first ticket record');
    if (!sum || sum.tag !== RECORD_CHECKSUM || sum.value.length !== 32) throw new Error('ticket record without its checksum');
    if (!equal(createHash('sha256').update(image.subarray(rec.start, rec.end)).digest(), sum.value)) throw new Error(`ticket record checksum mismatch at ${rec.start}`);
    out.push(rec);
  }
  return out;
}

/** Every item with `tag`, and the span from the first one's start to the last one's end (they are contiguous). */
function run(items: Item[], tag: number): { list: Item[]; span?: [number, number] } {
  const list = items.filter((i) => i.tag === tag);
  return { list, span: list.length ? [list[0].start, list[list.length - 1].end] : undefined };
}

/**
 * The card state an image holds. Byte fields (serial, keys, certificates, faces, TF_V, tombstones) are views of
 * `image`, not copies, and the encodings of its parts are cached as views too: a card in memory is its image plus
 * the small objects that index it. A commit re-points the views of the state it makes to what it wrote and moved
 * (rebaseState, adoptUsagePatch, adoptImagePatch).
 */
export function decodeState(image: Uint8Array): CardState {
  try {
    const items = bodyItems(image);
    const m = new TlvMap(items, { repeatable: [0xe3, 0xe4, 0xe5, 0xe7] });
    const pair = (tag: number): CardKeyPair | undefined => {
      const item = items.find((i) => i.tag === tag);
      if (!item) return undefined;
      const p = TlvMap.parse(item.value);
      const kp = { privateKey: p.require(0x80), publicKey: p.require(0x81) };
      partCache.set(kp, image.subarray(item.start, item.end));
      return kp;
    };
    const keys = (tag: number): KeyEntry[] => {
      const { list, span } = run(items, tag);
      const out = list.map((i) => {
        const k = TlvMap.parse(i.value, { repeatable: [0xc9] });
        return { id: k.bytes(0xc1, 8, 8), scopes: k.all(0xc9).map(fromUtf8), key: k.require(0xd0) };
      });
      if (span) partCache.set(out, image.subarray(span[0], span[1]));
      return out;
    };
    const sym = run(items, 0xe5);
    const symKeys: SymKeyEntry[] = sym.list.map((i) => {
      const k = TlvMap.parse(i.value);
      return { id: k.bytes(0xc1, 8, 8), operator: fromUtf8(k.require(0xc9)), key: k.bytes(0xd0, 16, 16), ...(k.has(0xc2) ? { privacyKey: k.bytes(0xc2, 16, 16) } : {}) };
    });
    if (sym.span) partCache.set(symKeys, image.subarray(sym.span[0], sym.span[1]));
    const tombItem = items.find((i) => i.tag === 0xe6);
    if (!tombItem) throw new Error('missing tag (E6)');
    const tomb = TlvMap.parse(tombItem.value);
    const area = tomb.require(0x82);
    const count = readUint(tomb.require(0x81));
    const tombstones: Tombstone[] = [];
    for (let i = 0; i < count; i++) {
      tombstones.push({
        ticketDigest: area.subarray(i * 16, i * 16 + 8),
        tidDigest: area.subarray(i * 16 + 8, i * 16 + 12),
        issuedAt: readUint(area.subarray(i * 16 + 12, i * 16 + 16)),
      });
    }
    const tombstoneFloor = readUint(tomb.require(0x80));
    tombstoneCache.set(tombstones, { floor: tombstoneFloor, encoded: image.subarray(tombItem.start, tombItem.end) });
    const tickets = items.filter((i) => i.tag === 0xe7).map((i) => decodeRecord(image, i, image[8] === IMAGE_VERSION));
    const cert = (tag: number) => {
      const item = items.find((i) => i.tag === tag);
      if (item) partCache.set(item.value, image.subarray(item.start, item.end));
      return item?.value;
    };
    return {
      serial: m.bytes(0xc6, 8, 8),
      suite: m.require(0xd1)[0],
      lifecycle: m.require(0xd7)[0],
      capacity: readUint(m.require(0xd8)),
      nextSeq: readUint(m.require(0xc8)),
      encKey: pair(0xe1),
      signKey: pair(0xe2),
      encCert: cert(0xd5),
      signCert: cert(0xd6),
      identity: m.has(0xdb) ? fromUtf8(m.require(0xdb)) : undefined,
      authorityKeys: keys(0xe3),
      terminalKeys: keys(0xe4),
      symKeys,
      tombstones,
      tombstoneFloor,
      tickets,
      // Images written before protocol version 2 carry no card time: every ticket they hold or deleted was accepted.
      cardTime: m.has(0xce) ? readUint(m.require(0xce)) : Math.max(0, tombstoneFloor, ...tickets.map((t) => t.issuedAt), ...tombstones.map((t) => t.issuedAt)),
    };
  } catch (e) {
    throw new NvmCorruptError(`card image is corrupt: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * After a whole-image commit: move the byte fields of `s` (which `image` encodes, exactly) onto `image`, in place,
 * and cache its parts' encodings as views of it. Values do not change, only where they live: so the card holds one
 * buffer, and what is cached by these objects (loaded private keys, encodings) stays valid.
 */
export function rebaseState(s: CardState, image: Uint8Array): void {
  // The records come last, each copied whole from its cached encoding: where they start is known without a walk.
  let recordBytes = 0;
  for (const r of s.tickets) {
    const e = recordCache.get(r);
    if (!e) return rebaseByParsing(s, image);
    recordBytes += e.length;
  }
  const recordsAt = image.length - recordBytes;
  rebaseHead(s, image, itemsOf(image, IMAGE_OVERHEAD, recordsAt));
  let o = recordsAt;
  for (const r of s.tickets) o = moveRecord(r, image, o);
}

/**
 * One record of a re-encoded image, at `at`, where encodeState copied its cached encoding: its fields move by an
 * offset when they are views of the image it was last placed in; otherwise (a record just made, by LOAD) it is
 * parsed. Either way its cache and place then point into `image`. Returns where the next record starts.
 */
function moveRecord(r: TicketRecord, image: Uint8Array, at: number): number {
  const length = recordCache.get(r)!.length;
  const end = at + length - RECORD_CHECKSUM_BYTES;
  const place = recordPlaces.get(r);
  const from = place?.image;
  // Where `v` lies in the record's last place, if it lies there entirely.
  const within = (v: Uint8Array): number => (from && v.buffer === from.buffer ? v.byteOffset - from.byteOffset : -1);
  const face = within(r.face);
  const tfv = within(r.tfv);
  const fits = (o: number, v: Uint8Array) => place !== undefined && o >= place.recordStart && o + v.length <= place.recordEnd;
  if (place && place.recordEnd - place.recordStart === end - at && fits(face, r.face) && fits(tfv, r.tfv)) {
    const shift = at - place.recordStart;
    r.face = image.subarray(face + shift, face + shift + r.face.length);
    r.tfv = image.subarray(tfv + shift, tfv + shift + r.tfv.length);
    recordPlaces.set(r, { image, recordStart: at, recordEnd: end, usageStart: place.usageStart + shift, usageEnd: place.usageEnd + shift });
  } else {
    const { tlv: t, next } = decodeOne(image, at);
    placeRecord(r, image, { tag: t.tag, value: t.value, start: at, end: next });
  }
  recordCache.set(r, image.subarray(at, end + RECORD_CHECKSUM_BYTES));
  return end + RECORD_CHECKSUM_BYTES;
}

/** A record's fields as views of its item in `image`, and its place there. */
function placeRecord(r: TicketRecord, image: Uint8Array, item: Item): void {
  const view = (i: Item) => image.subarray(i.start, i.end);
  for (const c of childrenOf(image, item)) {
    if (c.tag === 0xa1) r.face = view(c);
    else if (c.tag === 0xa2) r.tfv = view(c);
    else if (c.tag === 0xa3) recordPlaces.set(r, { image, recordStart: item.start, recordEnd: item.end, usageStart: c.start, usageEnd: c.end });
  }
}

/** rebaseState by a walk of the whole image: for a state whose records' encodings are not all cached. */
function rebaseByParsing(s: CardState, image: Uint8Array): void {
  const items = itemsOf(image, IMAGE_OVERHEAD, image.length);
  rebaseHead(s, image, items);
  const records = items.filter((i) => i.tag === 0xe7);
  s.tickets.forEach((r, i) => {
    placeRecord(r, image, records[i]);
    recordCache.set(r, image.subarray(records[i].start, records[i].end + RECORD_CHECKSUM_BYTES));
  });
}

/** The parts before the records (keys, certificates, key lists, tombstones) as views of `image`, given its items. */
function rebaseHead(s: CardState, image: Uint8Array, items: Item[]): void {
  const one = (tag: number) => items.find((i) => i.tag === tag);
  const view = (i: Item) => image.subarray(i.start, i.end);
  s.serial = one(0xc6)!.value;
  for (const [tag, p] of [[0xe1, s.encKey], [0xe2, s.signKey]] as const) {
    const item = one(tag);
    if (!p || !item) continue;
    const [priv, pub] = childrenOf(image, item);
    p.privateKey = priv.value;
    p.publicKey = pub.value;
    partCache.set(p, view(item));
  }
  const d5 = one(0xd5);
  if (d5 && s.encCert) partCache.set((s.encCert = d5.value), view(d5));
  const d6 = one(0xd6);
  if (d6 && s.signCert) partCache.set((s.signCert = d6.value), view(d6));
  for (const [tag, list] of [[0xe3, s.authorityKeys], [0xe4, s.terminalKeys]] as const) {
    const { list: found, span } = run(items, tag);
    found.forEach((item, i) => {
      for (const c of childrenOf(image, item)) {
        if (c.tag === 0xc1) list[i].id = c.value;
        else if (c.tag === 0xd0) list[i].key = c.value;
      }
    });
    if (span) partCache.set(list, image.subarray(span[0], span[1]));
  }
  const sym = run(items, 0xe5);
  sym.list.forEach((item, i) => {
    for (const c of childrenOf(image, item)) {
      if (c.tag === 0xc1) s.symKeys[i].id = c.value;
      else if (c.tag === 0xd0) s.symKeys[i].key = c.value;
      else if (c.tag === 0xc2) s.symKeys[i].privacyKey = c.value;
    }
  });
  if (sym.span) partCache.set(s.symKeys, image.subarray(sym.span[0], sym.span[1]));
  const e6 = one(0xe6)!;
  const area = childrenOf(image, e6).find((c) => c.tag === 0x82)!.value;
  s.tombstones.forEach((t, i) => {
    t.ticketDigest = area.subarray(i * 16, i * 16 + 8);
    t.tidDigest = area.subarray(i * 16 + 8, i * 16 + 12);
  });
  tombstoneCache.set(s.tombstones, { floor: s.tombstoneFloor, encoded: view(e6) });
}

/**
 * The writes that take `image` (which encodes `prev`) to the image of `next` when `next` differs from `prev` only
 * in usage records (A3) that encode to the same length, which is what WRITE USAGE does at one station: the new A3
 * in place and its record's new checksum (image version 2: only that record is hashed). Null when the change is
 * anything else, or the image is version 1 (the whole image is then re-encoded, as version 2).
 */
export function planUsagePatch(prev: CardState, next: CardState, image: Uint8Array): { offset: number; bytes: Uint8Array }[] | null {
  if (image[8] !== IMAGE_VERSION) return null;
  if (!sameBesidesTickets(prev, next)) return null;
  if (prev.tickets.length !== next.tickets.length) return null;
  const patches: { offset: number; bytes: Uint8Array }[] = [];
  for (let i = 0; i < next.tickets.length; i++) {
    const a = prev.tickets[i];
    const b = next.tickets[i];
    if (a === b) continue;
    const place = recordPlaces.get(a);
    if (!place || !sameImage(place.image, image)) return null;
    if (!sameBesidesUsage(a, b)) return null;
    const usage = encodedUsage(b.usage);
    if (usage.length !== place.usageEnd - place.usageStart) return null;
    // The record's checksum as it will be: the record with the new A3 in place (assembled in a scratch buffer, not
    // a new one a tap), hashed in one call (no Hash object).
    const record = recordScratch(place.recordEnd - place.recordStart);
    record.set(image.subarray(place.recordStart, place.recordEnd));
    record.set(usage, place.usageStart - place.recordStart);
    const sum = hash('sha256', record, 'buffer') as unknown as Uint8Array;
    patches.push({ offset: place.usageStart, bytes: usage }, { offset: place.recordEnd + 2, bytes: new Uint8Array(sum.buffer, sum.byteOffset, 32) });
  }
  return patches;
}

/** Where planUsagePatch assembles a record to hash it: one buffer for the process (the hash is taken at once). */
let scratch = new Uint8Array(2048);

function recordScratch(n: number): Uint8Array {
  if (scratch.length < n) scratch = new Uint8Array(n);
  return scratch.subarray(0, n);
}

/** After planUsagePatch's writes landed: the new records lie where the old ones did, with their new A3. */
export function adoptUsagePatch(prev: CardState, next: CardState): void {
  for (let i = 0; i < next.tickets.length; i++) {
    const a = prev.tickets[i];
    const b = next.tickets[i];
    if (a === b) continue;
    const place = recordPlaces.get(a)!;
    const encoded = recordCache.get(a);
    // The old record's cached encoding is a view of bytes that now hold the new A3: it re-encodes if ever needed.
    recordCache.delete(a);
    recordPlaces.delete(a);
    recordPlaces.set(b, place);
    if (encoded) recordCache.set(b, encoded);
  }
}

/**
 * Whether two views show the same image: the same bytes from the same start. A commit that appends or cuts the
 * image in the buffer it lies in gives a new view of it, and the records placed before still lie in it.
 */
function sameImage(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset;
}

/** One write of a patch: `bytes` at `offset` of the image. */
export interface ImageWrite {
  offset: number;
  bytes: Uint8Array;
}

/** A commit as the few writes that take an image to the next state's (planImagePatch), and what adoptImagePatch needs. */
export interface ImagePatch {
  /** The image's length after the writes. */
  length: number;
  /** In ascending order of offset; the last ones fill the image to `length` when it grows. */
  writes: ImageWrite[];
  /** The image the writes apply to. */
  image: Uint8Array;
  /** Where the records start: the body before them keeps its length (the patch needs it to). */
  recordsAt: number;
  /** How many leading records stay where they are, and where the first record that does not stay starts. */
  kept: number;
  changedAt: number;
  /** The records `prev` held and `next` does not (DELETE's; a replaced record, when a usage update changes its length). */
  removed: TicketRecord[];
  /** Whether a part the state holds as views of the image (keys, certificates, tombstones) may have moved or changed. */
  headChanged: boolean;
}

/** Bytes of equal content between two changed ranges below which one write covers both (each write is a syscall and a journal entry). */
const WRITE_GAP = 32;

/**
 * The writes that take the header and the body before the records of `image` (which end at `recordsAt`) to those of
 * `s` with records of `recordBytes`, or null when that body's length differs. The parts are hashed as they are
 * (the header's checksum), not assembled; a part that is a view of the image where it goes (the key pairs,
 * certificates and key lists the state caches as views, the tombstone area when unchanged) is its bytes there, so
 * only the small parts a command makes anew are compared. Changed ranges closer than WRITE_GAP are one write.
 */
function headWrites(s: CardState, image: Uint8Array, recordsAt: number, recordBytes: number): ImageWrite[] | null {
  const parts = headParts(s);
  if (IMAGE_OVERHEAD + totalLength(parts) !== recordsAt) return null;
  const header = new Uint8Array(13);
  header.set(MAGIC, 0);
  header[8] = IMAGE_VERSION;
  header.set(u32(recordsAt - IMAGE_OVERHEAD + recordBytes), 9);
  const sum = createHash('sha256').update(header);
  const changed: ImageWrite[] = [];
  const compare = (bytes: Uint8Array, at: number) => {
    for (let i = 0; i < bytes.length; ) {
      if (bytes[i] === image[at + i]) {
        i++;
        continue;
      }
      const start = i;
      while (i < bytes.length && bytes[i] !== image[at + i]) i++;
      changed.push({ offset: at + start, bytes: bytes.subarray(start, i) });
    }
  };
  compare(header.subarray(9), 9);
  let o = IMAGE_OVERHEAD;
  for (const p of parts) {
    sum.update(p);
    if (p.buffer !== image.buffer || p.byteOffset !== image.byteOffset + o) compare(p, o);
    o += p.length;
  }
  compare(new Uint8Array(sum.digest()), 13);
  // Ranges in order of offset (the checksum's, found last, lies between the length and the body): merged by gaps.
  changed.sort((x, y) => x.offset - y.offset);
  const writes: ImageWrite[] = [];
  for (let i = 0; i < changed.length; ) {
    const start = changed[i].offset;
    let end = start + changed[i].bytes.length;
    let j = i + 1;
    while (j < changed.length && changed[j].offset - end <= WRITE_GAP) end = changed[j].offset + changed[j++].bytes.length;
    if (j === i + 1) writes.push(changed[i]);
    else {
      // The unchanged bytes between the ranges are the image's own.
      const bytes = image.slice(start, end);
      for (let k = i; k < j; k++) bytes.set(changed[k].bytes, changed[k].offset - start);
      writes.push({ offset: start, bytes });
    }
    i = j;
  }
  return writes;
}

/** The parts of a state that are views of its image, or cached as views of it: a patch that changes one re-points them. */
const HEAD_VIEW_KEYS = ['serial', 'encKey', 'signKey', 'encCert', 'signCert', 'authorityKeys', 'terminalKeys', 'symKeys', 'tombstones', 'tombstoneFloor'] as const satisfies readonly (keyof CardState)[];

/**
 * The writes that take `image` (which encodes `prev`, image version 2) to the image of `next`, when the body before
 * the records keeps its length (every command after personalisation: LOAD, DELETE, usage, LOCK): the bytes of the
 * header and of that body that change (lengths, sequence number, card time, tombstones; the header's checksum is
 * over them, so that body is hashed again, a few KB: headWrites), then the records from the first that changed on:
 * the new records and, when their length differs from the removed ones', the records after them, moved. A LOAD so
 * appends its record and rewrites a few dozen bytes of the header and body; the records before the change, which is
 * all of them for a LOAD, are neither copied nor compared. The image is then byte for byte encodeState(next).
 * Null when the change is anything else (a personalisation command changes the body's length), the image is
 * version 1, `prev`'s records do not lie in `image`, or the image would exceed the card's capacity (the whole
 * image is then re-encoded, or refused).
 * The records `next` no longer holds keep copies of their faces and TF_V: the bytes they were views of are rewritten.
 */
export function planImagePatch(prev: CardState, next: CardState, image: Uint8Array): ImagePatch | null {
  if (image[8] !== IMAGE_VERSION) return null;
  const p = prev.tickets;
  const q = next.tickets;
  // The records both hold at the start and at the end, by identity: a command builds `next` from `prev`'s objects.
  let kept = 0;
  while (kept < p.length && kept < q.length && p[kept] === q[kept]) kept++;
  let tail = 0;
  while (tail < p.length - kept && tail < q.length - kept && p[p.length - 1 - tail] === q[q.length - 1 - tail]) tail++;
  const placeIn = (r: TicketRecord): RecordPlace | undefined => {
    const place = recordPlaces.get(r);
    return place && sameImage(place.image, image) ? place : undefined;
  };
  // Where the records start and the first changed one lies, from the places decodeState, rebaseState and the
  // patches before gave them; the records lie one after the other to the end of the image.
  let recordsAt = image.length;
  let changedAt = image.length;
  let removedEnd = image.length;
  if (p.length > 0) {
    const first = placeIn(p[0]);
    const last = placeIn(p[p.length - 1]);
    if (!first || !last || last.recordEnd + RECORD_CHECKSUM_BYTES !== image.length) return null;
    recordsAt = first.recordStart;
    if (kept < p.length) {
      const changed = placeIn(p[kept]);
      if (!changed) return null;
      changedAt = changed.recordStart;
    }
    if (tail > 0) {
      const moved = placeIn(p[p.length - tail]);
      if (!moved) return null;
      removedEnd = moved.recordStart;
    }
  }
  const added = q.slice(kept, q.length - tail);
  // A record object of `prev` in a new position is a reordering no command makes: re-encode the whole image then.
  for (const r of added) if (recordPlaces.has(r)) return null;
  const encoded = added.map(encodeRecord);
  const length = changedAt + totalLength(encoded) + (image.length - removedEnd);
  // Too big: the whole-image path refuses it (NOT_ENOUGH_MEMORY) before anything below changes a record.
  if (length > next.capacity) return null;
  const writes = headWrites(next, image, recordsAt, length - recordsAt);
  if (!writes) return null;
  let o = changedAt;
  for (const e of encoded) {
    writes.push({ offset: o, bytes: e });
    o += e.length;
  }
  // The records after the change move when the change's length differs (a DELETE: by the removed record's length).
  if (o !== removedEnd && removedEnd < image.length) writes.push({ offset: o, bytes: image.subarray(removedEnd) });
  const removed = p.slice(kept, p.length - tail);
  for (const r of removed) {
    r.face = r.face.slice();
    r.tfv = r.tfv.slice();
  }
  return { length, writes, image, recordsAt, kept, changedAt, removed, headChanged: HEAD_VIEW_KEYS.some((k) => prev[k] !== next[k]) };
}

/**
 * After planImagePatch's writes landed, `image` being the store's image now: `next`'s fields as views of it. In the
 * buffer the patch was planned on, only what the patch moved or wrote is re-pointed (the records from the change on,
 * the head's parts when they changed); in another (the store had to grow, or a backend copied) everything moves.
 */
export function adoptImagePatch(next: CardState, patch: ImagePatch, image: Uint8Array): void {
  for (const r of patch.removed) {
    recordCache.delete(r);
    recordPlaces.delete(r);
  }
  if (!sameImage(image, patch.image)) return rebaseState(next, image);
  if (patch.headChanged) rebaseHead(next, image, itemsOf(image, IMAGE_OVERHEAD, patch.recordsAt));
  let o = patch.changedAt;
  for (let i = patch.kept; i < next.tickets.length; i++) o = moveRecord(next.tickets[i], image, o);
}

/**
 * Whether two states hold the same values (by identity) for every key of STATE_KEYS but `tickets`, and two records
 * for every key of RECORD_KEYS but `usage`: planUsagePatch's test, written out (a loop over the key names was a
 * megamorphic keyed load per key, every tap). card/patch.test.ts checks these against the lists.
 */
export function sameBesidesTickets(a: CardState, b: CardState): boolean {
  return (
    a.serial === b.serial &&
    a.suite === b.suite &&
    a.lifecycle === b.lifecycle &&
    a.capacity === b.capacity &&
    a.encKey === b.encKey &&
    a.signKey === b.signKey &&
    a.encCert === b.encCert &&
    a.signCert === b.signCert &&
    a.identity === b.identity &&
    a.authorityKeys === b.authorityKeys &&
    a.terminalKeys === b.terminalKeys &&
    a.symKeys === b.symKeys &&
    a.tombstones === b.tombstones &&
    a.tombstoneFloor === b.tombstoneFloor &&
    a.nextSeq === b.nextSeq &&
    a.cardTime === b.cardTime
  );
}

/** See sameBesidesTickets: two records agree on every key of RECORD_KEYS but `usage`. */
export function sameBesidesUsage(a: TicketRecord, b: TicketRecord): boolean {
  return (
    a.seq === b.seq &&
    a.operator === b.operator &&
    a.tid === b.tid &&
    a.serviceDate === b.serviceDate &&
    a.train === b.train &&
    a.origin === b.origin &&
    a.destination === b.destination &&
    a.departure === b.departure &&
    a.issuedAt === b.issuedAt &&
    a.maxEntries === b.maxEntries &&
    a.face === b.face &&
    a.tfv === b.tfv
  );
}

/** The keys of a card state, and of a ticket record below: what planUsagePatch's comparisons cover (card/patch.test.ts). */
export const STATE_KEYS = ['serial', 'suite', 'lifecycle', 'capacity', 'encKey', 'signKey', 'encCert', 'signCert', 'identity', 'authorityKeys', 'terminalKeys', 'symKeys', 'tombstones', 'tombstoneFloor', 'nextSeq', 'tickets', 'cardTime'] as const satisfies readonly (keyof CardState)[];
export const RECORD_KEYS = ['seq', 'operator', 'tid', 'serviceDate', 'train', 'origin', 'destination', 'departure', 'issuedAt', 'maxEntries', 'face', 'tfv', 'usage'] as const satisfies readonly (keyof TicketRecord)[];

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
    validUntil: f.validUntil,
    maxEntries: f.maxEntries ?? 1,
    face,
    tfv,
    usage,
  };
}

/** A record of the image; `inPlace` (version 2) caches its encoding and place, so its usage can be updated in place. */
function decodeRecord(image: Uint8Array, item: Item, inPlace: boolean): TicketRecord {
  const children = childrenOf(image, item);
  const m = new TlvMap(children);
  const face = children.find((i) => i.tag === 0xa1);
  const tfv = children.find((i) => i.tag === 0xa2);
  const usage = children.find((i) => i.tag === 0xa3);
  if (!face || !tfv || !usage) throw new Error('ticket record incomplete');
  const r = makeRecord(readUint(m.require(0xc8)), image.subarray(face.start, face.end), image.subarray(tfv.start, tfv.end), decodeUsageRecordContent(usage.value));
  if (inPlace) {
    recordCache.set(r, image.subarray(item.start, item.end + RECORD_CHECKSUM_BYTES));
    recordPlaces.set(r, { image, recordStart: item.start, recordEnd: item.end, usageStart: usage.start, usageEnd: usage.end });
  }
  return r;
}
