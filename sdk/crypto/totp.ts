// One-time passwords: HOTP (RFC 4226) and its time-based variant TOTP (RFC 6238) with HMAC-SHA-1, -256 or
// -512 from node:crypto. A real-name holder-data request carries a TOTP code from the terminal's shared secret.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidInputError } from '../errors.js';

/** The HMAC hash functions RFC 6238 §1.2 allows. */
export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

/** Every {@link TotpAlgorithm}, in the order the RFC names them. */
export const TOTP_ALGORITHMS: readonly TotpAlgorithm[] = ['SHA1', 'SHA256', 'SHA512'];

/** A TOTP's parameters, agreed between the terminal and the service at registration (RFC 6238 §4, §5.2). */
export interface TotpParameters {
  algorithm: TotpAlgorithm;
  /** Digits of the code, 6..8 (RFC 4226 §5.3: at least 6). */
  digits: number;
  /** Time step X in seconds (RFC 6238 §4.1; 30 recommended). */
  period: number;
  /** T0, the Unix time to start counting steps from (default 0). */
  t0?: number;
}

/** RFC 6238's defaults: HMAC-SHA-1, 6 digits, 30 s steps from T0 = 0. */
export const DEFAULT_TOTP: TotpParameters = { algorithm: 'SHA1', digits: 6, period: 30 };

/** RFC 4226 §4 R6 and RFC 6238 §5.1: a shared secret as long as the hash output is what the RFCs recommend. */
export const TOTP_SECRET_LENGTH: Record<TotpAlgorithm, number> = { SHA1: 20, SHA256: 32, SHA512: 64 };

const HASH: Record<TotpAlgorithm, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

/** Refuse parameters outside what the RFCs allow or this service accepts (InvalidInputError naming the field). */
export function checkTotpParameters(p: TotpParameters): void {
  if (!TOTP_ALGORITHMS.includes(p.algorithm)) throw new InvalidInputError(`TOTP algorithm ${String(p.algorithm)} is not SHA1, SHA256 or SHA512`);
  if (!Number.isInteger(p.digits) || p.digits < 6 || p.digits > 8) throw new InvalidInputError(`TOTP digits must be 6..8, got ${p.digits}`);
  if (!Number.isInteger(p.period) || p.period < 1 || p.period > 300) throw new InvalidInputError(`TOTP period must be 1..300 s, got ${p.period}`);
  if (p.t0 !== undefined && (!Number.isSafeInteger(p.t0) || p.t0 < 0)) throw new InvalidInputError('TOTP T0 must be a non-negative integer');
}

/**
 * HOTP(K, C) = Truncate(HMAC(K, C)) mod 10^digits (RFC 4226 §5.3), C the 8-byte big-endian counter.
 * The code keeps its leading zeros: it is a string of exactly `digits` digits.
 */
export function hotp(secret: Uint8Array, counter: number | bigint, algorithm: TotpAlgorithm = 'SHA1', digits = 6): string {
  if (!(secret instanceof Uint8Array) || secret.length < 16) throw new InvalidInputError('an OTP secret is at least 16 bytes (RFC 4226 R6: 128 bits)');
  const c = BigInt(counter);
  if (c < 0n || c >= 1n << 64n) throw new InvalidInputError('HOTP counter must fit 8 bytes');
  checkTotpParameters({ algorithm, digits, period: 30 });
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(c);
  const h = createHmac(HASH[algorithm], secret).update(message).digest();
  // Dynamic truncation: the low 4 bits of the last byte choose where 31 bits are read.
  const offset = h[h.length - 1] & 0x0f;
  const binary = ((h[offset] & 0x7f) << 24) | (h[offset + 1] << 16) | (h[offset + 2] << 8) | h[offset + 3];
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** T = floor((time - T0) / X) (RFC 6238 §4.2), time in Unix seconds. */
export function totpStep(time: number, p: Pick<TotpParameters, 'period' | 't0'>): number {
  if (!Number.isFinite(time) || time < (p.t0 ?? 0)) throw new InvalidInputError(`TOTP time ${time} is before T0`);
  return Math.floor((time - (p.t0 ?? 0)) / p.period);
}

/** TOTP(K, T) = HOTP(K, T) for the step that `time` (Unix seconds) falls in. */
export function totp(secret: Uint8Array, time: number, p: TotpParameters = DEFAULT_TOTP): string {
  checkTotpParameters(p);
  return hotp(secret, totpStep(time, p), p.algorithm, p.digits);
}

/** The code of one step (what a verifier compares against). */
export function totpForStep(secret: Uint8Array, step: number, p: TotpParameters): string {
  checkTotpParameters(p);
  return hotp(secret, step, p.algorithm, p.digits);
}

/** Compare two codes without leaking, through timing, how many leading digits matched. */
export function sameCode(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
