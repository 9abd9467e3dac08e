// TOTP against the standards' own known answers: RFC 6238 Appendix B (all eighteen values: six times, three
// hash functions, 8 digits, X = 30, T0 = 0, a seed per hash as in its reference code) and RFC 4226 Appendix D.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InvalidInputError } from '../errors.js';
import { hotp, sameCode, totp, totpForStep, totpStep, type TotpAlgorithm } from './totp.js';

const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));

// RFC 6238 Appendix B: "The test token shared secrets use the following ASCII string values".
const SEED: Record<TotpAlgorithm, Uint8Array> = {
  SHA1: ascii('12345678901234567890'),
  SHA256: ascii('12345678901234567890123456789012'),
  SHA512: ascii('1234567890123456789012345678901234567890123456789012345678901234'),
};

// RFC 6238 Appendix B table: time (s), T (hex), TOTP for SHA1, SHA256, SHA512.
const APPENDIX_B: [number, string, Record<TotpAlgorithm, string>][] = [
  [59, '0000000000000001', { SHA1: '94287082', SHA256: '46119246', SHA512: '90693936' }],
  [1111111109, '00000000023523EC', { SHA1: '07081804', SHA256: '68084774', SHA512: '25091201' }],
  [1111111111, '00000000023523ED', { SHA1: '14050471', SHA256: '67062674', SHA512: '99943326' }],
  [1234567890, '000000000273EF07', { SHA1: '89005924', SHA256: '91819424', SHA512: '93441116' }],
  [2000000000, '0000000003F940AA', { SHA1: '69279037', SHA256: '90698825', SHA512: '38618901' }],
  [20000000000, '0000000027BC86AA', { SHA1: '65353130', SHA256: '77737706', SHA512: '47863826' }],
];

describe('TOTP (RFC 6238)', () => {
  for (const [time, stepHex, codes] of APPENDIX_B) {
    it(`Appendix B at ${time}: T = ${stepHex}`, () => {
      expect(totpStep(time, { period: 30 }).toString(16).toUpperCase().padStart(16, '0')).toBe(stepHex);
    });
    for (const algorithm of ['SHA1', 'SHA256', 'SHA512'] as const) {
      it(`Appendix B at ${time} with HMAC-${algorithm}: ${codes[algorithm]}`, () => {
        expect(totp(SEED[algorithm], time, { algorithm, digits: 8, period: 30 })).toBe(codes[algorithm]);
      });
    }
  }

  it('keeps leading zeros (Appendix B, SHA1 at 1111111109 is 07081804)', () => {
    expect(totp(SEED.SHA1, 1111111109, { algorithm: 'SHA1', digits: 8, period: 30 })).toHaveLength(8);
  });

  it('a 6-digit code is the low six digits of the 8-digit one (same truncated value, mod 10^6)', () => {
    for (const [time, , codes] of APPENDIX_B) expect(totp(SEED.SHA1, time, { algorithm: 'SHA1', digits: 6, period: 30 })).toBe(codes.SHA1.slice(2));
  });

  it('is constant within a step and changes across steps (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 120 }), (t, period) => {
        const p = { algorithm: 'SHA256' as const, digits: 8, period };
        const step = totpStep(t, p);
        expect(totp(SEED.SHA256, step * period, p)).toBe(totp(SEED.SHA256, step * period + period - 1, p));
        expect(totpForStep(SEED.SHA256, step, p)).toBe(totp(SEED.SHA256, t, p));
      }),
      { numRuns: 50 },
    );
  });

  it('refuses parameters the RFCs do not allow', () => {
    expect(() => totp(SEED.SHA1, 59, { algorithm: 'MD5' as TotpAlgorithm, digits: 6, period: 30 })).toThrow(InvalidInputError);
    expect(() => totp(SEED.SHA1, 59, { algorithm: 'SHA1', digits: 5, period: 30 })).toThrow(/digits must be 6\.\.8/);
    expect(() => totp(SEED.SHA1, 59, { algorithm: 'SHA1', digits: 6, period: 0 })).toThrow(/period must be/);
    expect(() => totp(new Uint8Array(10), 59)).toThrow(/at least 16 bytes/);
    expect(() => totp(SEED.SHA1, -1)).toThrow(/before T0/);
  });
});

describe('HOTP (RFC 4226 Appendix D)', () => {
  // Secret "12345678901234567890", counters 0..9, 6 digits.
  const D = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  D.forEach((code, counter) => {
    it(`counter ${counter}: ${code}`, () => expect(hotp(SEED.SHA1, counter)).toBe(code));
  });
});

describe('sameCode', () => {
  it('is true only for the same digits', () => {
    expect(sameCode('123456', '123456')).toBe(true);
    expect(sameCode('123456', '123457')).toBe(false);
    expect(sameCode('123456', '1234567')).toBe(false);
  });
});
