// GET DATA: one data object of the card by its tag in P1-P2 (serial, suite, keys, certificates, capacity,
// installed keys, ...), the identifying ones only after EXTERNAL AUTHENTICATE. Capacity D8 and installed keys D9 are coded here.

import { concat, readUint, u16, u32 } from '../bytes.js';
import { command, T } from '../spec.js';
import { TlvError } from '../tlv.js';

export const GET_DATA = command('GET DATA');

/**
 * Objects that identify the card or reveal how it is used: in OPERATIONAL state the card answers them only after
 * EXTERNAL AUTHENTICATE (6982 before), so a keyless reader learns that this is an e-ticket card and nothing more.
 * Suite (D1), life cycle (D7) and protocol version (DA) stay open; in PERSONALIZING state everything is open.
 */
export const IDENTIFYING_OBJECTS: readonly number[] = [
  T.CARD_SERIAL,
  T.CARD_ENCRYPTION_PUBLIC_KEY,
  T.CARD_SIGNING_PUBLIC_KEY,
  T.CARD_ENCRYPTION_CERTIFICATE,
  T.CARD_SIGNING_CERTIFICATE,
  T.CARD_IDENTITY,
  T.CAPACITY,
  T.INSTALLED_KEYS,
];

/** D8: NVM total bytes (4), free bytes (4), tickets stored (2), tombstones (2). */
export interface CardCapacity {
  totalBytes: number;
  freeBytes: number;
  tickets: number;
  tombstones: number;
}

const CAPACITY_LENGTH = 12;

export function encodeCapacity(c: CardCapacity): Uint8Array {
  return concat(u32(c.totalBytes), u32(c.freeBytes), u16(c.tickets), u16(c.tombstones));
}

export function decodeCapacity(d: Uint8Array): CardCapacity {
  if (d.length !== CAPACITY_LENGTH) throw new TlvError(`capacity: ${d.length} bytes, expected ${CAPACITY_LENGTH}`);
  return { totalBytes: readUint(d.subarray(0, 4)), freeBytes: readUint(d.subarray(4, 8)), tickets: readUint(d.subarray(8, 10)), tombstones: readUint(d.subarray(10, 12)) };
}

/** Kinds of key in D9: 01 authority (key 6), 02 terminal bundle (key 4), 03 diversified checking key (sym). */
export const INSTALLED_KEY_KIND = { authority: 1, terminal: 2, diversified: 3 } as const;
export type InstalledKeyKind = keyof typeof INSTALLED_KEY_KIND;

export interface InstalledKey {
  kind: InstalledKeyKind;
  keyId: Uint8Array;
}

const INSTALLED_KEY_LENGTH = 9;

/** D9: kind (1) ‖ key id (8), repeated. */
export function encodeInstalledKeys(keys: InstalledKey[]): Uint8Array {
  return concat(...keys.map((k) => concat(new Uint8Array([INSTALLED_KEY_KIND[k.kind]]), k.keyId)));
}

export function decodeInstalledKeys(d: Uint8Array): InstalledKey[] {
  if (d.length % INSTALLED_KEY_LENGTH !== 0) throw new TlvError(`installed keys: ${d.length} bytes is not a multiple of ${INSTALLED_KEY_LENGTH}`);
  const kinds = Object.entries(INSTALLED_KEY_KIND) as [InstalledKeyKind, number][];
  const out: InstalledKey[] = [];
  for (let o = 0; o < d.length; o += INSTALLED_KEY_LENGTH) {
    const kind = kinds.find(([, v]) => v === d[o])?.[0];
    if (!kind) throw new TlvError(`installed keys: unknown kind ${d[o]}`);
    out.push({ kind, keyId: d.slice(o + 1, o + INSTALLED_KEY_LENGTH) });
  }
  return out;
}
