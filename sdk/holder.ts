// The real-name holder record (docs/realname.md): its fields, bounds and checks, and its JSON form. Light on
// purpose (no crypto): the CLI parses holder columns and flags with it before any heavy module loads.

import { InvalidInputError } from './errors.js';

/** Bounds of a holder record: what an ID check needs, and not a byte more (a photo fits one envelope). */
export const HOLDER_LIMITS = { name: 64, documentType: 16, documentNumber: 32, photoBytes: 32 * 1024 } as const;

/** The holder's private data, kept only by the back office (encrypted) and shown only to authorised terminals. */
export interface HolderRecord {
  name: string;
  document: { type: string; number: string };
  /** JPEG or PNG, at most HOLDER_LIMITS.photoBytes. */
  photo?: Uint8Array;
}

/** A holder record as JSON carries it (API bodies, CSV columns, the sealed answer): photo in base64. */
export interface HolderJson {
  name: string;
  document: { type: string; number: string };
  photo?: string;
}

/** A record that is not a usable holder record; the message names the field, never its value. */
export class HolderRecordError extends InvalidInputError {}

// Letters, marks, digits, punctuation and spaces; no control characters, so the canonical JSON escapes nothing
// but quote and backslash, and one record has one byte string whatever the implementation.
const TEXT = /^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]+$/u;
const DOC_TYPE = /^[A-Za-z0-9_-]+$/;
const DOC_NUMBER = /^[A-Za-z0-9 ./-]+$/;

function text(v: unknown, field: string, max: number, re: RegExp): string {
  if (typeof v !== 'string') throw new HolderRecordError(`holder ${field} must be text`);
  const s = v.normalize('NFC').trim();
  if (!s) throw new HolderRecordError(`holder ${field} is empty`);
  if ([...s].length > max) throw new HolderRecordError(`holder ${field} is longer than ${max} characters`);
  if (!re.test(s)) throw new HolderRecordError(`holder ${field} has characters it may not hold`);
  return s;
}

function isImage(b: Uint8Array): boolean {
  const jpeg = b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
  const png = b.length > 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
  return jpeg || png;
}

/** A checked, normalised (NFC, trimmed) holder record; HolderRecordError names the first field at fault. */
export function holderRecord(input: { name?: unknown; document?: { type?: unknown; number?: unknown } | unknown; photo?: unknown }): HolderRecord {
  if (typeof input !== 'object' || input === null) throw new HolderRecordError('a holder record is an object');
  const doc = (input.document ?? {}) as { type?: unknown; number?: unknown };
  const out: HolderRecord = {
    name: text(input.name, 'name', HOLDER_LIMITS.name, TEXT),
    document: { type: text(doc.type, 'document type', HOLDER_LIMITS.documentType, DOC_TYPE), number: text(doc.number, 'document number', HOLDER_LIMITS.documentNumber, DOC_NUMBER) },
  };
  if (input.photo !== undefined && input.photo !== null) {
    let photo: Uint8Array;
    if (input.photo instanceof Uint8Array) photo = input.photo;
    else if (typeof input.photo === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(input.photo) && input.photo.length % 4 === 0) photo = new Uint8Array(Buffer.from(input.photo, 'base64'));
    else throw new HolderRecordError('holder photo must be base64');
    if (photo.length > HOLDER_LIMITS.photoBytes) throw new HolderRecordError(`holder photo is larger than ${HOLDER_LIMITS.photoBytes} bytes`);
    if (!isImage(photo)) throw new HolderRecordError('holder photo must be a JPEG or PNG image');
    out.photo = photo;
  }
  return out;
}

/** The record as JSON carries it: photo in base64. */
export function holderJson(h: HolderRecord): HolderJson {
  return { name: h.name, document: { type: h.document.type, number: h.document.number }, ...(h.photo ? { photo: Buffer.from(h.photo).toString('base64') } : {}) };
}
