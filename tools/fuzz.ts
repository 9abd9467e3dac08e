// The fuzzing campaign (issue 10): `npm run fuzz -- --apdus N [--suite rsa|sm9|all] [--seed S] [--json FILE]`.
// Progress on stderr; a table on stdout (or JSON with --json -); exit 0 with no violation, 1 with any, 2 on bad usage.

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { fuzz, type FuzzReport } from '../testing/fuzz.js';
import type { SuiteName } from '../sdk/spec.js';

const usage = 'usage: npm run fuzz -- --apdus N [--suite rsa|sm9|all] [--seed S] [--mutants M] [--json FILE|-]';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        apdus: { type: 'string', default: '100000' },
        suite: { type: 'string', default: 'all' },
        seed: { type: 'string' },
        mutants: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`fuzz: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const apdus = Number(values.apdus);
  const suites: SuiteName[] = values.suite === 'all' ? ['rsa', 'sm9'] : [values.suite as SuiteName];
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  const mutants = values.mutants === undefined ? undefined : Number(values.mutants);
  if (!Number.isSafeInteger(apdus) || apdus <= 0 || suites.some((s) => s !== 'rsa' && s !== 'sm9') || (seed !== undefined && !Number.isSafeInteger(seed)) || (mutants !== undefined && !(Number.isSafeInteger(mutants) && mutants > 0))) {
    console.error(`fuzz: bad arguments\n${usage}`);
    return 2;
  }
  const reports: FuzzReport[] = [];
  for (const suite of suites) {
    const report = await fuzz({
      suite,
      apdus,
      seed,
      mutantsPerCommand: mutants,
      progressEvery: Math.max(100, Math.round(apdus / 50)),
      onProgress: (p) =>
        process.stderr.write(`fuzz ${suite}: ${p.apdus.toLocaleString('en')} / ${apdus.toLocaleString('en')} APDUs, ${Math.round(p.rate)} APDU/s, ${p.violations} violations, ${p.seconds.toFixed(0)} s\n`),
    });
    reports.push(report);
  }
  const summary = reports.map((r) => ({
    suite: r.suite,
    seed: r.seed,
    apdus: r.apdus,
    mutants: r.mutants,
    honest: r.honest,
    cards: r.cards,
    cycles: r.cycles,
    seconds: Number(r.seconds.toFixed(1)),
    rate: Math.round(r.rate),
    violations: r.violations,
  }));
  if (values.json !== undefined) {
    const text = JSON.stringify({ summary, reports }, null, 2) + '\n';
    if (values.json === '-') process.stdout.write(text);
    else writeFileSync(values.json, text);
  }
  if (values.json !== '-') {
    console.table(summary);
    for (const r of reports) {
      // 61XX and 6CXX tell the length left or expected: one line per family is what a reader wants.
      const families: Record<string, number> = {};
      for (const [s, n] of Object.entries(r.statusWords)) {
        const family = s.startsWith('61') || s.startsWith('6c') ? `${s.slice(0, 2)}xx` : s;
        families[family] = (families[family] ?? 0) + n;
      }
      const statuses = Object.entries(families)
        .sort((a, b) => b[1] - a[1])
        .map(([s, n]) => `${s.toUpperCase()}×${n}`)
        .join(' ');
      console.log(`${r.suite}: mutant answers ${statuses}`);
      for (const v of r.violationList.slice(0, 10)) console.log(`  VIOLATION ${v.kind} (${v.phase}, ${v.original}, ${v.mutation}): ${v.detail}\n    > ${v.apdu}\n    < ${v.response}`);
    }
  }
  return reports.some((r) => r.violations > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`fuzz: ${(e as Error).stack ?? e}`);
    process.exit(3);
  },
);
