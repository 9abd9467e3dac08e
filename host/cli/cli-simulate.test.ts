// `eticket simulate` as an operator runs it (spawned process): a short metro run whose --json report says
// what the command promises (taps end to end, ingest, lag, memory per card, every injected anomaly found,
// the denylist at the gates) with exit status 0; options out of range are a usage error (exit 1, one line).

import { mkdtempSync, rmSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteTemplate } from '../../test/helpers/stores.js';
import { cli, type CliEnv } from './run-cli.js';

let dir: string;
let env: CliEnv;

beforeAll(async () => {
  await pgliteTemplate();
  dir = mkdtempSync(join(tmpdir(), 'eticket-sim-cli-'));
  env = { cwd: dir, timeoutMs: 300_000 };
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('eticket simulate', () => {
  it('a short run prints one JSON report: taps stored end to end, lag, memory per card, every injected anomaly found, no honest card accused, exit 0', async () => {
    const r = await cli(env, '--json', 'simulate', '--duration', '8', '--cards', '400', '--stations', '8', '--lines', '2', '--gates', '2', '--rate', '200', '--rollbacks', '1', '--clones', '1', '--seed', 'cli-test');
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const docs = r.json();
    expect(docs).toHaveLength(1);
    const rep = docs[0] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(rep.engine).toBe('pglite');
    expect(rep.taps).toBeGreaterThan(0);
    // How much was stored by the end of the run depends on the machine's speed (a figure, not checked here); once
    // the journals went up, every tap's record is stored.
    expect(rep.storedAfterDrain).toBe(rep.taps);
    expect(rep.storedAtEnd).toBeLessThanOrEqual(rep.storedAfterDrain);
    expect(rep.endToEndPerS).toBeGreaterThanOrEqual(0);
    expect(rep.endToEndPerS).toBeLessThanOrEqual(rep.gateTapsPerS);
    // The riders' day holds the taps --rate asks for (200 a second for 8 s), within the randomness of the plan.
    expect(rep.offeredTapsPerS).toBeGreaterThan(190);
    expect(rep.offeredTapsPerS).toBeLessThan(215);
    // The gate threads run 5 below the process (the back office's thread), as far as nice goes (19).
    if (process.platform === 'linux') expect(rep.gateThreadNice).toBe(Math.min(19, getPriority() + 5));
    for (const k of ['uploadP50Ms', 'uploadP99Ms', 'matchP99Ms', 'firstHalfMaxMs', 'secondHalfMaxMs']) expect(typeof rep.lag[k], k).toBe('number');
    expect(rep.memory.cards).toBe(400);
    expect(rep.memory.imageBytesPerCard).toBeGreaterThan(0);
    // 8 s covers the first trips only: the clone rides at once, a rollback may come after the run (planned, not injected).
    expect(rep.anomalies.planned).toBe(2);
    expect(rep.anomalies.injected.length).toBeGreaterThanOrEqual(1);
    for (const i of rep.anomalies.injected) expect(['clone', 'rollback']).toContain(i.kind);
    expect(rep.anomalies.missed).toEqual([]);
    expect(rep.anomalies.falsePositives).toEqual([]);
    expect(rep.denylist.cards).toBeGreaterThanOrEqual(rep.anomalies.injected.length);
    expect(rep.network).toEqual({ stations: 8, links: expect.any(Number), fares: expect.any(Number) });
    expect(rep.timeline.length).toBeGreaterThan(0);
    // The progress display goes to stderr, a line a second when stderr is not a terminal.
    expect(r.stderr).toMatch(/^ *\d+ s {2}taps \d+ \(\d+\/s\)/m);
  }, 300_000);

  it('options out of range: exit 1 with one line naming the bounds, nothing run', async () => {
    const r = await cli({ ...env, timeoutMs: 60_000 }, 'simulate', '--stations', '3');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--stations ≥ 4/);
    const lines = await cli({ ...env, timeoutMs: 60_000 }, 'simulate', '--stations', '5', '--lines', '3');
    expect(lines.code).toBe(1);
    expect(lines.stderr).toMatch(/each line needs at least two stations/);
    const gates = await cli({ ...env, timeoutMs: 60_000 }, 'simulate', '--gates', '1', '--workers', '2');
    expect(gates.code).toBe(1);
    expect(gates.stderr).toMatch(/--gates \(1 per station\) must be at least --workers \(2\)/);
  }, 120_000);
});
