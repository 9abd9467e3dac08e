// utf8 / fromUtf8 take a JavaScript path for short ASCII text and the native coder for the rest: both paths
// must give the bytes and strings TextEncoder / a fatal TextDecoder give, and malformed bytes must still be refused.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fromUtf8, utf8 } from './bytes.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

describe('utf8 and fromUtf8', () => {
  it('encode any string as TextEncoder does, around the 64-character short-text bound', () => {
    for (const s of ['', 'BJS', 'A'.repeat(64), 'A'.repeat(65), 'BJS-上海', '上'.repeat(64), 'x\u007f', '\u0080', 'a\uD800b', '😀']) {
      expect(utf8(s)).toEqual(encoder.encode(s));
    }
    fc.assert(fc.property(fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 80 }), (a, b) => {
      expect(utf8(a)).toEqual(encoder.encode(a));
      expect(utf8(b)).toEqual(encoder.encode(b));
    }));
  });

  it('decode valid UTF-8 as a fatal TextDecoder does (a leading BOM included)', () => {
    for (const s of ['', 'G1234', 'A'.repeat(64), 'A'.repeat(65), 'Zürich', '\uFEFFBOM']) expect(fromUtf8(encoder.encode(s))).toBe(decoder.decode(encoder.encode(s)));
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
      expect(fromUtf8(encoder.encode(s))).toBe(s);
    }));
  });

  it('refuse malformed UTF-8 with the decoder TypeError, short or long, whatever ASCII precedes it', () => {
    for (const bytes of [Uint8Array.of(0xff), Uint8Array.of(0x41, 0x42, 0xc3), new Uint8Array([...new Array(70).fill(0x41), 0x80])]) {
      expect(() => fromUtf8(bytes)).toThrow(TypeError);
    }
  });
});
