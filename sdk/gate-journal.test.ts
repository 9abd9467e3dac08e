// Journal records and checkpoints: exact round trip, strict decoding (one reading per record), the hash chain
// and the gate's checkpoint signature catching any altered, dropped, reordered or spliced record.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { RsaPrivateKey } from './crypto/rsa.js';
import { CryptoError } from './errors.js';
import { decodeTapRecord, encodeTapRecord, GENESIS, signCheckpoint, verifyChain, verifyCheckpoint, type TapFields, type TapRecord } from './gate-journal.js';
import { TlvError, tlv } from './tlv.js';

const key = RsaPrivateKey.generate(2048);
const other = RsaPrivateKey.generate(2048);
const gateKey = { suite: 'rsa' as const, publicKey: key.publicKey };

const receipt = () => tlv(0xb4, new Uint8Array(randomBytes(120)));

function tap(i: number, over: Partial<TapFields> = {}): TapFields {
  return {
    gateId: 'A01-G1',
    time: 1_900_000_000_000 + i * 1000,
    direction: i % 2 ? 'exit' : 'entry',
    pass: true,
    station: 'A01',
    mode: 'sym',
    operator: 'CR',
    tid: `CR-20300115-${String(i).padStart(6, '0')}`,
    cardSerial: new Uint8Array(randomBytes(8)),
    counter: i,
    faceDigest: new Uint8Array(randomBytes(32)),
    receipt: receipt(),
    transaction: { operator: 'CR', keyId: new Uint8Array(8).fill(1), terminalChallenge: new Uint8Array(16).fill(2), cardChallenge: new Uint8Array(8).fill(3), viewMac: new Uint8Array(8).fill(4), command: 'WRITE USAGE', macedCommand: new Uint8Array(randomBytes(90)) },
    denylistVersion: 7,
    ...over,
  };
}

function chain(n: number): TapRecord[] {
  const out: TapRecord[] = [];
  for (let i = 1; i <= n; i++) out.push(encodeTapRecord(tap(i), i, out[i - 2]?.hash ?? GENESIS));
  return out;
}

describe('tap records', () => {
  it('round-trip exactly, with every optional field present or absent', () => {
    const full = encodeTapRecord(tap(1, { realName: 'mismatch' }), 1, GENESIS);
    const back = decodeTapRecord(full.encoded);
    expect(back).toEqual(full);
    const reject = encodeTapRecord({ gateId: 'G', time: 5, direction: 'entry', pass: false, reason: 'denylisted', station: 'S', mode: 'pki', denylistVersion: 0 }, 9, full.hash);
    expect(decodeTapRecord(reject.encoded)).toEqual(reject);
  });

  it('refuse a PASS without receipt, a REJECT without reason, unknown or reordered fields, trailing bytes', () => {
    const ok = encodeTapRecord(tap(1), 1, GENESIS).encoded;
    expect(() => decodeTapRecord(encodeTapRecord(tap(1, { receipt: undefined }), 1, GENESIS).encoded)).toThrow(TlvError);
    expect(() => decodeTapRecord(encodeTapRecord(tap(1, { pass: false, receipt: undefined }), 1, GENESIS).encoded)).toThrow(/REJECT carries its reason/);
    expect(() => decodeTapRecord(new Uint8Array([...ok, 0]))).toThrow(TlvError);
    // Swap two fields inside the template: same content, another order, not canonical.
    const inner = ok.subarray(ok[1] === 0x82 ? 4 : ok[1] === 0x81 ? 3 : 2);
    const first = 3; // 80 01 01
    const swapped = new Uint8Array([...ok.subarray(0, ok.length - inner.length), ...inner.subarray(first, first + 2 + inner[first + 1]), ...inner.subarray(0, first), ...inner.subarray(first + 2 + inner[first + 1])]);
    expect(() => decodeTapRecord(swapped)).toThrow(/canonical/);
  });

  it('property: any bytes decode to a record or a TlvError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          decodeTapRecord(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(TlvError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('chain and checkpoints', () => {
  it('a signed checkpoint authenticates every record up to its head', () => {
    const records = chain(5);
    const cp = signCheckpoint(key, { gateId: 'A01-G1', seq: 5, head: records[4].hash, time: 1 });
    verifyCheckpoint(cp, gateKey);
    verifyChain(records, cp);
  });

  it('another key, an altered, dropped, reordered or substituted record: CryptoError', () => {
    const records = chain(5);
    const cp = signCheckpoint(key, { gateId: 'A01-G1', seq: 5, head: records[4].hash, time: 1 });
    expect(() => verifyCheckpoint(signCheckpoint(other, { gateId: 'A01-G1', seq: 5, head: records[4].hash, time: 1 }), gateKey)).toThrow(CryptoError);
    expect(() => verifyCheckpoint({ ...cp, seq: 6 }, gateKey)).toThrow(CryptoError);
    const altered = encodeTapRecord({ ...tap(3), tid: 'CR-FORGED' }, 3, records[1].hash);
    expect(() => verifyChain([records[0], records[1], altered, records[3], records[4]], cp)).toThrow(/does not link/);
    expect(() => verifyChain([records[0], records[1], records[3], records[4]], cp)).toThrow(/not consecutive/);
    expect(() => verifyChain([records[1], records[0], records[2], records[3], records[4]], cp)).toThrow(CryptoError);
    expect(() => verifyChain(records.slice(0, 4), cp)).toThrow(/not the head/);
  });
});
