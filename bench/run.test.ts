// The benchmark harness runs end to end in --quick mode and its --json document has the promised schema.
// No timing is asserted here: timings belong to `npm run bench`, not to tests. It runs the compiled bench
// (dist/bench/run.js, built by the test setup) as `npm run bench` does: no TypeScript compiled at run time.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('npm run bench', () => {
  it('--quick --json emits one JSON document with every gate entry and the cost model', () => {
    const out = execFileSync(process.execPath, ['dist/bench/run.js', '--quick', '--json'], {
      cwd: root,
      env: { ...process.env, ETICKET_PCSC: '0' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      // A guard against a hang on a loaded machine, not a speed limit.
      timeout: 540_000,
    });
    const doc = JSON.parse(out);
    expect(doc.schema).toBe('eticket-bench/1');
    expect(doc.machine.cores).toBeGreaterThan(0);
    expect(Date.parse(doc.date)).not.toBeNaN();
    const modes = new Set(doc.gate.map((g: { mode: string }) => g.mode));
    expect([...modes].sort()).toEqual(['pki', 'sym']);
    for (const g of doc.gate) {
      for (const k of ['medianMs', 'p99Ms', 'cryptoFloorMs', 'overheadRatio', 'pairRatioMedian', 'cpuPairRatioMedian', 'batchOverheadRatio', 'tps', 'apdus', 'wireBytes']) expect(typeof g[k], k).toBe('number');
      expect(typeof g.suite).toBe('string');
      expect(g.modeledTapMs424 === null || typeof g.modeledTapMs424 === 'number').toBe(true);
      if (g.mode === 'sym') expect(g.modeledTapMs424).toBeGreaterThan(0);
    }
    expect(doc.issuance.length).toBeGreaterThan(0);
    expect(doc.issuance[0].nvmBytesPerTicket).toBeGreaterThan(0);
    expect(doc.farm.length).toBeGreaterThan(0);
    // The CLI batch (issue 13) ran with every row loaded, beside its crypto floor from the same run.
    expect(doc.cliIssuance.rows).toBe(100);
    expect(doc.cliIssuance.runs).toHaveLength(1); // --quick: one batch (three in a full run, the median reported)
    for (const k of ['commandTicketsPerSecond', 'rowsTicketsPerSecond', 'cryptoFloorMs', 'floorTicketsPerSecond', 'ratioCommand', 'ratioRows', 'imageBytesPerTicket']) expect(doc.cliIssuance[k], k).toBeGreaterThan(0);
    expect(doc.goals['CLI batch issuance / crypto floor'].target).toBe('≥ 0.5');
    expect(doc.pcsc.skipped).toContain('ETICKET_PCSC=0');
    expect(doc.goals.symTapJcop4At424.target).toBe('≤ 100 ms');
    // The metro simulation ran (10 s in --quick): taps went end to end and every injected anomaly was found.
    expect(doc.simulation.skipped).toBeUndefined();
    expect(doc.simulation.endToEndPerS).toBeGreaterThan(0);
    expect(doc.simulation.injected).toBeGreaterThan(0);
    expect(doc.simulation.missed).toBe(0);
    expect(doc.simulation.falsePositives).toBe(0);
  }, 570_000);
});
