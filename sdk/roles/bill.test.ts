// Bills: canonical JSON (one text per value), signed over "ETKT BILL 1" ‖ that text; strict parsing; any
// changed field or a key other than the one named fails; malformed documents are refused before any crypto.

import { describe, expect, it } from 'vitest';
import { CryptoError, InvalidInputError } from '../errors.js';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { canonicalJson, decodeBill, signBill, verifyBill } from './bill.js';

const key = RsaPrivateKey.generate(2048);
const fields = { billId: 'A'.repeat(32), kind: 'sale' as const, operator: 'CR', tid: 'CR-1', faceDigest: 'B'.repeat(64), card: '0011223344556677', seller: 'acme', price: 55300, currency: 'CNY', time: 1_900_000_000, item: { service: 'G1', seat: '12A' } };

describe('bills', () => {
  it('canonical JSON sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: 'x', c: [2, 1] }, u: undefined })).toBe('{"a":{"c":[2,1],"d":"x"},"b":1}');
  });

  it('a signed bill round-trips through its document and verifies; a changed field or another key fails', () => {
    const { bill, document } = signBill(key, fields);
    expect(JSON.parse(document)).toEqual(bill);
    const parsed = decodeBill(document);
    verifyBill(parsed, key.publicKey);
    expect(() => verifyBill({ ...parsed, price: 1 }, key.publicKey)).toThrow(/does not verify/);
    expect(() => verifyBill({ ...parsed, item: { ...parsed.item, seat: '12B' } }, key.publicKey)).toThrow(CryptoError);
    expect(() => verifyBill(parsed, RsaPrivateKey.generate(2048).publicKey)).toThrow(/names key/);
  });

  it('refuses malformed documents: unknown fields, wrong types, bad hex, not JSON', () => {
    const { bill } = signBill(key, fields);
    for (const bad of [{ ...bill, extra: 1 }, { ...bill, price: '1' }, { ...bill, price: -1 }, { ...bill, card: 'zz' }, { ...bill, format: 'x' }, { ...bill, item: { evil: 'x' } }, { ...bill, signature: 'xyz' }]) {
      expect(() => decodeBill(bad as never)).toThrow(CryptoError);
    }
    expect(() => decodeBill('not json')).toThrow(/not JSON/);
    expect(() => signBill(key, { ...fields, currency: 'cny' })).toThrow(InvalidInputError);
  });
});
