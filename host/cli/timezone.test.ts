// The operator's time zone arithmetic (timezone.ts): UTC, computed without Intl, agrees with Intl's own UTC zone
// ("Etc/UTC", computed through the formatter) at every instant; a UTC+8 day starts 8 hours before UTC's.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dayStartIn, serviceDateAt } from './timezone.js';

const SECONDS_1970_TO_2100 = 4_102_444_800;

describe('time zone arithmetic', () => {
  it('UTC without a formatter gives the same service date and day start as Intl\'s Etc/UTC, at any instant from 1970 to 2100', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: SECONDS_1970_TO_2100 }), (t) => {
        const date = serviceDateAt(t, 'UTC');
        expect(date).toBe(serviceDateAt(t, 'Etc/UTC'));
        expect(dayStartIn(date, 'UTC')).toBe(dayStartIn(date, 'Etc/UTC'));
        expect(dayStartIn(date, 'UTC')).toBe(t - (t % 86400));
      }),
      { numRuns: 500 },
    );
  });

  it('07:30 in Shanghai on 1 December is still 30 November in UTC; the Shanghai day starts at 16:00 UTC the day before', () => {
    const t = Date.parse('2026-11-30T23:30:00Z') / 1000;
    expect(serviceDateAt(t, 'Asia/Shanghai')).toBe(20261201);
    expect(serviceDateAt(t, 'UTC')).toBe(20261130);
    expect(dayStartIn(20261201, 'Asia/Shanghai')).toBe(Date.parse('2026-11-30T16:00:00Z') / 1000);
  });
});
