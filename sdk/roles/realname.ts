// Real-name tickets (DESIGN §7, docs/realname.md): the holder record, its canonical form and the salted binding
// digest a ticket face carries (96 holderBinding), and the holder answer sealed to one terminal's key.

import { createHash, randomBytes } from 'node:crypto';
import { concat, constantTimeEqual, fromHex, fromUtf8, hex, utf8 } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { holderJson, holderRecord, type HolderJson, type HolderRecord } from '../holder.js';
import { open, seal } from '../crypto/envelope.js';
import { getSuite } from '../crypto/suites.js';
import { keyId, type Decrypter } from '../crypto/suite.js';
import { canonicalJson } from './bill.js';
import { SUITE, type SuiteName } from '../spec.js';
import type { TicketFace } from '../ticket.js';

/** Domain separation of the binding digest. */
export const HOLDER_CONTEXT = utf8('ETKT HOLDER 1');
/** The `format` of a holder answer (its JSON, sealed to the terminal). */
export const HOLDER_ANSWER_FORMAT = 'eticket-holder/1';
export const HOLDER_REF_LENGTH = 16;
export const HOLDER_SALT_LENGTH = 16;
export const HOLDER_BINDING_LENGTH = 32;

// The record itself (fields, bounds, checks) is in sdk/holder.ts, light for the CLI; re-exported here.
export { HOLDER_LIMITS, HolderRecordError, holderJson, holderRecord, type HolderJson, type HolderRecord } from '../holder.js';

/** Host-to-host envelope bound for a holder answer (the card's is 8 KiB): the record with its photo, base64. */
export const HOLDER_ANSWER_MAX_CIPHERTEXT = 60 * 1024;

/** The holder record a terminal got does not belong to the ticket it checks (binding, TID or reference differ). */
export class HolderBindingError extends CryptoError {}

/** The record's one byte string: UTF-8 of its canonical JSON (keys sorted, photo base64). */
export function canonicalHolder(h: HolderRecord): Uint8Array {
  return utf8(canonicalJson(holderJson(h)));
}

export function newHolderRef(): Uint8Array {
  return new Uint8Array(randomBytes(HOLDER_REF_LENGTH));
}

export function newHolderSalt(): Uint8Array {
  return new Uint8Array(randomBytes(HOLDER_SALT_LENGTH));
}

/**
 * 96 holderBinding = SHA-256("ETKT HOLDER 1" ‖ salt ‖ L(operator) ‖ operator ‖ L(TID) ‖ TID ‖ canonical record),
 * L a one-byte length. The salt is random and lives only inside the encrypted record: without it the digest
 * cannot be tested against guessed names and ID numbers, and it binds the record to one ticket of one operator.
 */
export function holderBinding(salt: Uint8Array, operator: string, tid: string, h: HolderRecord): Uint8Array {
  if (salt.length !== HOLDER_SALT_LENGTH) throw new InvalidInputError(`holder salt is ${HOLDER_SALT_LENGTH} bytes`);
  const op = utf8(operator);
  const t = utf8(tid);
  if (op.length > 255 || t.length > 255) throw new InvalidInputError('operator or TID too long for a holder binding');
  return new Uint8Array(
    createHash('sha256')
      .update(concat(HOLDER_CONTEXT, salt, new Uint8Array([op.length]), op, new Uint8Array([t.length]), t, canonicalHolder(h)))
      .digest(),
  );
}

/** What the back office seals to a terminal for one read (docs/realname.md "The answer"). */
export interface HolderAnswer {
  format: typeof HOLDER_ANSWER_FORMAT;
  operator: string;
  tid: string;
  /** Hex of 95 holderRef. */
  holderRef: string;
  /** Hex of the terminal's request challenge: this answer is for that request and no other. */
  challenge: string;
  /** The client id the answer was sealed for. */
  terminal: string;
  /** Hex of the binding salt. */
  salt: string;
  holder: HolderJson;
  readsLeft: number;
  /** The record's expiry (epoch seconds): the ticket's validUntil. */
  expiresAt: number;
}

/** Seal an answer to the terminal's encryption key (envelope B1 with the key id as recipient). */
export function sealHolderAnswer(suite: SuiteName, terminalEncryptionKey: Uint8Array, answer: HolderAnswer): Uint8Array {
  return seal(getSuite(suite), terminalEncryptionKey, keyId(terminalEncryptionKey), utf8(canonicalJson(answer)));
}

function answerFrom(plain: Uint8Array): HolderAnswer {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(fromUtf8(plain)) as Record<string, unknown>;
  } catch {
    throw new CryptoError('holder answer is not JSON');
  }
  const str = (k: string) => {
    if (typeof j[k] !== 'string') throw new CryptoError(`holder answer lacks ${k}`);
    return j[k] as string;
  };
  const int = (k: string) => {
    if (!Number.isSafeInteger(j[k]) || (j[k] as number) < 0) throw new CryptoError(`holder answer lacks ${k}`);
    return j[k] as number;
  };
  if (j.format !== HOLDER_ANSWER_FORMAT) throw new CryptoError(`holder answer is not ${HOLDER_ANSWER_FORMAT}`);
  let holder: HolderRecord;
  try {
    holder = holderRecord((j.holder ?? {}) as HolderJson);
  } catch (e) {
    throw new CryptoError(`holder answer carries no valid record: ${(e as Error).message}`);
  }
  return { format: HOLDER_ANSWER_FORMAT, operator: str('operator'), tid: str('tid'), holderRef: str('holderRef'), challenge: str('challenge'), terminal: str('terminal'), salt: str('salt'), holder: holderJson(holder), readsLeft: int('readsLeft'), expiresAt: int('expiresAt') };
}

/** Open an answer with the terminal's decryption key; CryptoError when it is not for this key or altered. */
export function openHolderAnswer(decrypter: Decrypter, sealed: Uint8Array): HolderAnswer {
  try {
    return answerFrom(open(decrypter, SUITE[decrypter.suite], keyId(decrypter.publicKey), sealed, HOLDER_ANSWER_MAX_CIPHERTEXT));
  } catch (e) {
    if (e instanceof CryptoError) throw e;
    throw new CryptoError(`holder answer does not open with this terminal's key: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The terminal's proof that the record it got belongs to the ticket the card showed: same operator, TID and
 * holder reference, the answer for this request, and the face's holderBinding recomputed from the salt.
 * Returns the holder record; HolderBindingError when any of it differs (a record swapped to another ticket).
 */
export function checkHolderAnswer(answer: HolderAnswer, face: TicketFace, challenge: Uint8Array): HolderRecord {
  if (!face.holderRef || !face.holderBinding) throw new InvalidInputError(`ticket ${face.tid} is not a real-name ticket`);
  if (answer.challenge.toUpperCase() !== hex(challenge)) throw new HolderBindingError('holder answer does not answer this request (replayed answer)');
  if (answer.operator !== face.operator || answer.tid !== face.tid || !constantTimeEqual(fromHex(answer.holderRef), face.holderRef)) {
    throw new HolderBindingError(`holder answer is for ticket ${answer.operator}/${answer.tid}, not for ${face.operator}/${face.tid}`);
  }
  const holder = holderRecord(answer.holder);
  const salt = fromHex(answer.salt);
  if (salt.length !== HOLDER_SALT_LENGTH || !constantTimeEqual(holderBinding(salt, face.operator, face.tid, holder), face.holderBinding)) {
    throw new HolderBindingError(`the holder record does not match the binding on ticket ${face.tid}: it belongs to another ticket or was altered`);
  }
  return holder;
}
