// The cost model's arithmetic: FACTS.md's 85 µs a byte at 106 kbit/s, ISO-DEP framing and chaining,
// and the chip figures it prices card operations with.

import { describe, expect, it } from 'vitest';
import { ASSUMPTIONS, CHIP_PROFILES, cardMs, estimateTap, wireMs } from './cost-model.js';

const ex = (cmd: number, resp: number) => ({ command: 'X', apdu: new Uint8Array(cmd), response: new Uint8Array(resp) });

describe('card cost model', () => {
  it('prices a byte at about 85 µs at 106 kbit/s and adds 3 bytes per frame', () => {
    const one = wireMs([ex(100, 2)], 106);
    expect(one.airBytes).toBe(100 + 3 + 2 + 3);
    const perByte = (one.ms - 2 * ASSUMPTIONS.turnaroundMs) / one.airBytes;
    expect(perByte).toBeCloseTo(0.085, 3);
    expect(wireMs([ex(100, 2)], 424).ms).toBeLessThan(one.ms / 3);
  });

  it('chains messages longer than a frame, each extra frame acknowledged', () => {
    const long = wireMs([ex(600, 2)], 106);
    // 600 bytes → 3 frames (253 payload each): 9 bytes of framing, 2 acknowledgements of 3 bytes
    expect(long.airBytes).toBe(600 + 9 + 6 + 2 + 3);
  });

  it('uses the JCAlgTest figures: an RSA-2048 signature costs JCOP4 75.7 ms', () => {
    const jcop4 = CHIP_PROFILES.find((p) => p.id === 'jcop4')!;
    expect(cardMs([{ op: 'rsa-private', what: 'sign' }], 0, jcop4)).toBeCloseTo(75.7, 5);
    expect(cardMs([{ op: 'sm9', what: 'sign' }], 1, jcop4)).toBeNaN();
  });

  it('estimates every profile at 106 and 424 kbit/s', () => {
    const est = estimateTap([ex(20, 2), ex(60, 240)], [{ op: 'cmac', bytes: 64 }]);
    expect(est.length).toBe(CHIP_PROFILES.length * 2);
    for (const e of est) expect(e.totalMs).toBeCloseTo(e.wireMs + e.cardMs, 9);
  });
});
