// The stateful fuzzer (testing/fuzz.ts) on both suites: mutants of every honest command, each sent in the state
// that accepts the original, give no violation; and each of its checks fires on a card built to break it.
// The 10^6-APDU campaigns run with `npm run fuzz` (figures in docs/security.md).

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { EticketCard } from './applet.js';
import { emulatedTarget, fuzz, type FuzzTarget, type ViolationKind } from '../testing/fuzz.js';
import { SUITES, worldFor } from '../test/helpers/world.js';

const sw = (r: Uint8Array) => (r[r.length - 2] << 8) | r[r.length - 1];

type Defect = (cmd: Uint8Array, r: Uint8Array, card: EticketCard, state: { dirty: boolean }) => Uint8Array;

/** The emulated card with one defect: `answer` may rewrite its answers or mark its own image changed. */
function defective(card: EticketCard, answer: Defect, state = { dirty: false }): FuzzTarget {
  const base = emulatedTarget(card);
  return {
    ...base,
    transmit: (c) => answer(c, card.transmit(c), card, state),
    fork: () => defective(card.fork(), answer, { dirty: state.dirty }),
    get image() {
      return state.dirty ? new Uint8Array([...card.image, 0]) : card.image;
    },
  };
}

describe.each(SUITES)('stateful fuzzer, %s suite', (suite) => {
  it('mutants of every command of personalisation, issuance, pki and sym taps and deletion: no violation', async () => {
    const report = await fuzz({ suite, apdus: 2500, seed: 20261130, world: worldFor(suite) });
    expect(report.violationList).toEqual([]);
    expect(report.violations).toBe(0);
    expect(report.apdus).toBeGreaterThanOrEqual(2500);
    // The campaign reached the commands that matter, in the states that accept them, and they refused mutants.
    for (const name of ['PUT KEY', 'LOCK', 'GET CHALLENGE', 'EXTERNAL AUTHENTICATE', 'LOAD', 'VERIFY', 'WRITE USAGE', 'READ', 'DELETE', 'GET DATA']) {
      expect(report.refusedByCommand[name] ?? 0, `${name} refused no mutant`).toBeGreaterThan(0);
    }
    // Signature checks were reached (9106), not only format checks.
    expect(report.statusWords['9106'] ?? 0).toBeGreaterThan(0);
  }, 600_000);
});

describe('the fuzzer finds what it is there to find', () => {
  const suite = SUITES[0];
  const run = async (wrap: (card: EticketCard) => FuzzTarget): Promise<ViolationKind[]> => {
    const report = await fuzz({ suite, apdus: 4000, seed: 7, world: worldFor(suite), wrapCard: wrap, stopOnViolation: true });
    return report.violationList.map((v) => v.kind);
  };

  it('a card whose NVM changes when it refuses a WRITE USAGE', async () => {
    const kinds = await run((card) =>
      defective(card, (c, r, _card, state) => {
        if (c[1] === 0x56 && sw(r) === 0x9106) state.dirty = true;
        return r;
      }),
    );
    expect(kinds).toContain('image-changed-on-refusal');
  }, 600_000);

  it('a card that answers a malformed LOAD with a status word the spec does not list', async () => {
    const kinds = await run((card) => defective(card, (c, r) => (c[1] === 0x50 && sw(r) === 0x6a80 ? new Uint8Array([0x69, 0x99]) : r)));
    expect(kinds).toContain('unlisted-status-word');
  }, 600_000);

  it('a card that reports an internal error on a truncated command', async () => {
    const kinds = await run((card) => defective(card, (c, r) => (sw(r) === 0x6700 ? new Uint8Array([0x6f, 0x00]) : r)));
    expect(kinds).toContain('internal-error');
  }, 600_000);

  it('a card that leaks its signing key in a refused GET DATA\'s answer', async () => {
    const kinds = await run((card) =>
      defective(card, (c, r, k) => {
        const key = k.persistent.signKey?.privateKey;
        return c[1] === 0xca && key && sw(r) !== 0x9000 ? new Uint8Array([...key.subarray(key.length - 40), ...r]) : r;
      }),
    );
    expect(kinds).toContain('secret-in-answer');
  }, 600_000);

  it('a card that throws', async () => {
    const kinds = await run((card) =>
      defective(card, (c, r) => {
        if (c[1] === 0x54 && sw(r) === 0x6a80) throw new RangeError('offset out of bounds');
        return r;
      }),
    );
    expect(kinds).toContain('threw');
  }, 600_000);
});

describe('npm run fuzz', () => {
  it('reports APDUs, rate and violations as JSON and exits 0 without violations; bad arguments exit 2', () => {
    const ok = spawnSync(process.execPath, ['--import', 'tsx', 'tools/fuzz.ts', '--apdus', '300', '--suite', 'rsa', '--seed', '1', '--json', '-'], { encoding: 'utf8', timeout: 300_000 });
    expect(ok.status, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout) as { summary: { suite: string; apdus: number; rate: number; violations: number; seed: number }[] };
    expect(out.summary).toHaveLength(1);
    expect(out.summary[0]).toMatchObject({ suite: 'rsa', violations: 0, seed: 1 });
    expect(out.summary[0].apdus).toBeGreaterThanOrEqual(300);
    expect(out.summary[0].rate).toBeGreaterThan(0);
    expect(ok.stderr).toMatch(/fuzz rsa: [\d,]+ \/ 300 APDUs/);
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'tools/fuzz.ts', '--apdus', 'lots'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^fuzz: bad arguments/);
  }, 300_000);
});
