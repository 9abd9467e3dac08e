// Every committed vector against the emulator in process (fresh image per group, and one reused card as a
// reader would hold it, twice), plus: files regenerate byte for byte, coverage of apdu-spec, report formats.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { protocol } from '../sdk/spec.js';
import { coverage, UNREACHABLE_IN_SUITE, UNREACHABLE_SW } from './coverage.js';
import { generate } from './generate.js';
import { imageProvider, readerProvider } from './providers.js';
import { writeReport, summaryTable } from './reports.js';
import { loadVectorFiles, runVectors, validateVectorFile, type RunReport } from './runner.js';

const DIR = fileURLToPath(new URL('./', import.meta.url));
const names = readdirSync(DIR).filter((f) => /^[a-z0-9]+-[a-z-]+\.json$/.test(f)).sort();
const files = loadVectorFiles(names.map((n) => `${DIR}${n}`));

const failures = (r: RunReport) => r.outcomes.filter((o) => o.status === 'fail').map((o) => `${o.file} ${o.tcId} ${o.comment}: ${o.message}`);

describe('vector files', () => {
  it('are committed as the generator writes them (deterministic, up to date)', () => {
    const a = generate();
    const b = generate();
    expect([...a.keys()].sort()).toEqual(names);
    for (const [name, text] of a) {
      expect(text, `${name}: run \`npx tsx test-vectors/generate.ts\``).toBe(readFileSync(`${DIR}${name}`, 'utf8'));
      expect(b.get(name)).toBe(text);
    }
  });

  it('are well formed: unique tcIds, every flag noted, counts right, schema names the step kinds', () => {
    for (const { path, file } of files) validateVectorFile(file, path);
    const schema = JSON.parse(readFileSync(`${DIR}schema/eticket-apdu-vectors.schema.json`, 'utf8'));
    const kinds = new Set(files.flatMap(({ file }) => file.testGroups.flatMap((g) => g.tests.flatMap((t) => t.steps.map((s) => s.kind)))));
    for (const k of kinds) expect(JSON.stringify(schema), `schema lacks step kind ${k}`).toContain(`"const":"${k}"`);
  });

  it('cover every (command, status word) pair per suite, every common status word, negative class, and gate-mode case', () => {
    const c = coverage(files.map((f) => f.file));
    expect(c.missing, 'vectors missing for these; add them to test-vectors/generate.ts').toEqual([]);
    expect(c.suites.map((s) => s.suite).sort()).toEqual(['rsa', 'sm9']);
    expect(c.modes.filter((m) => m.covered)).toHaveLength(8);
    for (const [suite, pairs] of Object.entries(UNREACHABLE_IN_SUITE)) {
      const s = c.suites.find((x) => x.suite === suite)!;
      for (const p of Object.keys(pairs)) expect(s.pairs.find((x) => `${x.command} ${x.sw}` === p)?.covered, `${suite}: ${p} is reached: drop it from UNREACHABLE_IN_SUITE`).toBe(false);
    }
    // The unreachable list stays honest: only spec status words, none that a vector does reach.
    for (const sw of Object.keys(UNREACHABLE_SW)) {
      expect(protocol.statusWords.map((s) => s.sw)).toContain(sw);
      expect(c.common.find((x) => x.sw === sw)?.covered ?? false, `${sw} is reached by a vector: drop it from UNREACHABLE_SW`).toBe(false);
    }
  });
});

describe('vectors on the emulator', () => {
  it('all pass on fresh images, one per group', async () => {
    const r = await runVectors(files, imageProvider());
    expect(failures(r)).toEqual([]);
    expect(r.counts.skip).toBe(0);
    expect(r.counts.pass).toBe(files.reduce((n, f) => n + f.file.numberOfTests, 0));
  }, 300_000); // about 850 vectors, two suites: 60-90 s on this 2-core machine, SM9 in software the larger half

  it('all pass through a short-APDU-only reader (the runner chains instead of extended length)', async () => {
    const r = await runVectors(files, imageProvider({ extendedLength: false }), { areas: ['personalisation', 'load', 'threats'] });
    expect(failures(r)).toEqual([]);
  }, 300_000);

  it.each(['rsa', 'sm9'] as const)('run on one blank %s card as in a reader: personalised once, re-runnable, the rest skipped with a reason', async (suite) => {
    const card = EticketCard.inMemory({ suite });
    const other = suite === 'rsa' ? 'sm9' : 'rsa';
    const provider = () => readerProvider({ transport: () => new EmulatorTransport(card, 'one card') });
    // SM9 in software is slow enough that filling a card and the cleanup between groups dominate: RSA
    // covers CardFull and every area here, SM9 the areas whose fixtures differ (personalisation, sym-gate).
    const areas = suite === 'sm9' ? ['personalisation', 'framing', 'sym-gate'] : undefined;
    const first = await runVectors(files, provider(), { excludeFlags: suite === 'sm9' ? ['CardFull'] : [], areas });
    expect(failures(first)).toEqual([]);
    const skipped = first.outcomes.filter((o) => o.status === 'skip');
    expect(new Set(skipped.map((o) => o.message))).toEqual(
      new Set([
        ...(suite === 'rsa'
          ? [
              'needs a card with exactly 1400 bytes of NVM; only an emulated image can be made to order',
              'needs a card with exactly 4194304 bytes of NVM; only an emulated image can be made to order',
              'needs a card that never accepted a later ticket (its time high-water mark decides key retirement); run it on emulated images (without --reader)',
            ]
          : []),
        'leaves the card unusable for the test profile; run it on a second blank card with --spend-card',
        `vectors for ${other} cards; this card is ${suite}`,
      ]),
    );
    // Second run on the same card: it is personalised now, and holds tombstones of the first run
    // (sym-gate tickets keep their operator, so their TIDs differ per run).
    const second = await runVectors(
      files.filter((f) => f.file.suite === suite),
      provider(),
      { excludeFlags: ['CardFull'], areas },
    );
    expect(failures(second)).toEqual([]);
    expect(second.outcomes.filter((o) => o.area === 'personalisation' && o.status === 'pass')).toEqual([]);
    expect(second.outcomes.filter((o) => o.area === 'sym-gate' && o.status === 'pass').length).toBeGreaterThan(60);
    expect(second.counts.pass).toBeGreaterThan(suite === 'sm9' ? 150 : 250);
  });

  it('run 10 times on one RSA card as in a reader: every run passes, and each leaves no ticket and the free space of the first', async () => {
    const card = EticketCard.inMemory({ suite: 'rsa' });
    const rsa = files.filter((f) => f.file.suite === 'rsa');
    const after: { fail: string[]; pass: number; tickets: number; usedBytes: number }[] = [];
    for (let run = 0; run < 10; run++) {
      const r = await runVectors(rsa, readerProvider({ transport: () => new EmulatorTransport(card, 'one card') }));
      after.push({ fail: failures(r), pass: r.counts.pass, tickets: card.persistent.tickets.length, usedBytes: card.usedBytes });
    }
    for (const [run, a] of after.entries()) {
      expect(a.fail, `run ${run + 1}`).toEqual([]);
      expect(a.tickets, `run ${run + 1} left tickets`).toBe(0);
      expect(a.usedBytes, `run ${run + 1}: NVM in use`).toBe(after[0].usedBytes);
    }
    // The first run also ran the personalisation vectors; every later run the same set.
    expect(after[0].pass).toBeGreaterThan(after[1].pass);
    expect(new Set(after.slice(1).map((a) => a.pass)).size).toBe(1);
    expect(after[1].pass).toBeGreaterThan(300);
    // Issue times stay near the clock: the tombstone floor never runs days ahead (it did, 10^7 s per run).
    expect(card.persistent.tombstoneFloor).toBeLessThan(Date.now() / 1000 + 86_400);
  }, 600_000);

  it('--spend-card: a second blank card runs the groups that use a card up, and nothing else', async () => {
    const card = EticketCard.inMemory({ suite: 'rsa' });
    const personalisation = files.filter((f) => f.file.suite === 'rsa' && f.file.area === 'personalisation');
    const r = await runVectors(personalisation, readerProvider({ transport: () => new EmulatorTransport(card, 'spent card'), spendCard: true }));
    expect(failures(r)).toEqual([]);
    const disposable = personalisation[0].file.testGroups.filter((g) => g.fixture.disposable && g.fixture.capacity === undefined);
    expect(r.counts.pass).toBe(disposable.reduce((n, g) => n + g.tests.length, 0));
    expect(new Set(r.outcomes.filter((o) => o.status === 'skip').map((o) => o.message))).toEqual(
      new Set(['--spend-card: this card runs only the groups that use a blank card up', 'needs a card with exactly 1400 bytes of NVM; only an emulated image can be made to order']),
    );
  }, 120_000);

  it('filters by flag, and reports a wrong expectation as a failure in every format', async () => {
    const broken = structuredClone(files.find((f) => f.file.area === 'framing')!);
    broken.path = 'rsa-framing.json';
    const test = broken.file.testGroups[1].tests.find((t) => t.flags.includes('WrongIns'))!;
    (test.steps[0] as { expect: { sw: string[] } }).expect.sw = ['9000'];
    const r = await runVectors([broken], imageProvider(), { flags: ['WrongIns'] });
    expect(r.counts.total).toBe(4);
    expect(r.counts.fail).toBe(1);
    expect(r.outcomes.find((o) => o.status === 'fail')!.message).toMatch(/expected SW 9000, card answered 6D00 INS_NOT_SUPPORTED/);
    const junit = writeReport(r, 'junit');
    expect(junit).toMatch(/<testsuites [^>]*tests="4" failures="1"/);
    expect(junit).toMatch(/<failure message="step 1 \(apdu\): expected SW 9000/);
    expect(junit.match(/<testcase /g)).toHaveLength(4);
    const tap = writeReport(r, 'tap');
    expect(tap.split('\n').slice(0, 2)).toEqual(['TAP version 13', '1..4']);
    expect(tap.match(/^not ok /gm)).toHaveLength(1);
    expect(JSON.parse(writeReport(r, 'json')).counts).toEqual({ total: 4, pass: 3, fail: 1, skip: 0 });
    expect(summaryTable(r)).toMatch(/rsa-framing\s+4\s+3\s+1\s+0/);
  });
});
