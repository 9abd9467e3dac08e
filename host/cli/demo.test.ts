// The README's main job (`npm run demo`) as a test: every step succeeds at any time of day, including the hours
// when the exit, three hours after the entry, falls on the next calendar day (a late ticket is found the day after).

import { describe, expect, it } from 'vitest';
import { runDemo } from './demo.js';

/** Unix seconds of tomorrow (UTC) at hh:mm:ss: later than the keys the demo makes, so every certificate is valid. */
function tomorrowAt(hh: number, mm: number, ss: number): number {
  const d = new Date();
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1, hh, mm, ss) / 1000;
}

describe('eticket demo (the README main job)', () => {
  for (const [hh, mm, ss] of [
    [0, 0, 30],
    [12, 0, 0],
    [21, 30, 0],
    [23, 59, 59],
  ] as const) {
    it(`every step succeeds when started at ${String(hh).padStart(2, '0')}:${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')} UTC`, async () => {
      const lines: string[] = [];
      const steps = await runDemo({ now: tomorrowAt(hh, mm, ss), log: (l) => lines.push(l) });
      expect(steps.filter((s) => !s.ok), lines.join('\n')).toEqual([]);
      expect(steps.map((s) => s.step)).toEqual(['keys', 'card', 'issue', 'issue', 'issue', 'capacity', 'read', 'verify', 'entry', 'entry-again', 'exit', 'delete', 'replay', 'final']);
      expect(lines.find((l) => l.includes('exit gate SHH'))).toMatch(/^✔ exit gate SHH: PASS \(goodbye\)$/);
    });
  }
});
