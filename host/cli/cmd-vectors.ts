// `eticket vectors run|list`: the APDU conformance vectors (test-vectors/) against fresh emulated images or
// the card in a PC/SC reader, with a summary table and JUnit / TAP / JSON reports for CI.

import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { ReportFormat } from '../../test-vectors/reports.js';
import { emit, EXIT, ExitStatus, globals, UsageError } from './context.js';

interface RunOptions {
  keys?: string;
  reader?: string;
  images?: string;
  flags?: string;
  excludeFlags?: string;
  area?: string;
  report?: string;
  out?: string;
  shortApdus?: boolean;
  spendCard?: boolean;
}

const list = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

async function vectorFiles(paths: string[]) {
  const [{ VECTOR_DIR, vectorFiles: packaged }, { loadVectorFiles }] = await Promise.all([import('../../test-vectors/files.js'), import('../../test-vectors/runner.js')]);
  const chosen = paths.length ? paths.map((p) => resolve(p)) : packaged();
  if (chosen.length === 0) throw new UsageError(`no vector files in ${VECTOR_DIR}`);
  try {
    return loadVectorFiles(chosen);
  } catch (e) {
    throw new UsageError(`cannot read the vector files: ${(e as Error).message}`);
  }
}

export function registerVectors(program: Command): void {
  const vectors = program
    .command('vectors')
    .description('APDU conformance vectors (test-vectors/): run them against a card, list them')
    .addHelpText('after', '\nExample:\n  $ eticket vectors list\n  $ eticket vectors run --keys ./test-vectors/keys --report junit --out vectors.xml');

  vectors
    .command('run [files...]')
    .description('run the vectors against fresh emulated images (default) or the card in a PC/SC reader')
    .option('--reader <name>', 'PC/SC reader holding a blank test card, or one personalised with the TEST ONLY profile (docs/qa.md)')
    .option('--images <dir>', 'emulator: keep the card images of each group in <dir>')
    .option('--flags <list>', 'only tests with one of these flags (comma-separated), e.g. Replay,TamperedMac')
    .option('--exclude-flags <list>', 'skip tests with any of these flags')
    .option('--area <list>', 'only these areas: personalisation, framing, load, read-verify, usage-delete, sym-gate')
    .option('--report <format>', 'also write a report: junit, tap or json')
    .option('--out <file>', 'write the report to <file> (default: standard output, the table then goes to standard error)')
    .option('--spend-card', 'the reader holds a second blank card to give up: run on it only the groups that leave a card unusable for the test profile')
    .option('--short-apdus', 'the reader passes no extended-length APDUs: the runner chains long commands')
    .option('--keys <dir>', 'the TEST ONLY keys (test-vectors/keys/ of the eticket repository; not in the npm package); default: $ETICKET_TEST_KEYS, else the checkout\'s')
    .addHelpText(
      'after',
      `
Exit status 0 when every selected vector passed, 4 when any failed, 3 when the reader or card is unusable.
A reader's card must be blank (the runner personalises it with the TEST ONLY keys of test-vectors/keys/) or
already personalised with them; groups that need a fresh or special card are skipped with the reason.
The run deletes the tickets it loaded and gives each run its own ticket ids and issue times: one test card runs
the vectors again and again. --spend-card gives up a second blank card for the groups that fill its key tables.

Example:
  $ eticket vectors run
  $ eticket vectors run --flags Replay,TamperedMac --report tap
  $ eticket vectors run --reader "Virtual PCD 00 00" --report junit --out vectors.xml`,
    )
    .action(async (paths: string[], opts: RunOptions, cmd: Command) => {
      const format = opts.report as ReportFormat | undefined;
      if (opts.spendCard && !opts.reader) throw new UsageError('--spend-card needs --reader');
      if (format && !['junit', 'tap', 'json'].includes(format)) throw new UsageError('--report is junit, tap or json');
      const [{ imageProvider, readerProvider }, { runVectors }, { summaryTable, writeReport }, { testKeysDir }] = await Promise.all([
        import('../../test-vectors/providers.js'),
        import('../../test-vectors/runner.js'),
        import('../../test-vectors/reports.js'),
        import('../../test-vectors/testkeys.js'),
      ]);
      const files = await vectorFiles(paths);
      // Before any card is touched: without the TEST ONLY keys nothing can run (a usage error that says where they are).
      const keysDir = testKeysDir(opts.keys);
      const provider = opts.reader
        ? readerProvider({ reader: opts.reader, extendedLength: !opts.shortApdus, spendCard: opts.spendCard })
        : imageProvider({ dir: opts.images, keep: opts.images !== undefined, extendedLength: !opts.shortApdus });
      const json = globals(cmd).json;
      const reportToStdout = format !== undefined && !opts.out;
      const progress = (line: string) => (reportToStdout || json ? process.stderr : process.stdout).write(line + '\n');
      const report = await runVectors(files, provider, {
        flags: list(opts.flags),
        excludeFlags: list(opts.excludeFlags),
        areas: list(opts.area),
        keysDir,
        onTest: (o) => {
          if (o.status === 'fail') progress(`FAIL ${o.suite}-${o.area} tcId ${o.tcId}: ${o.comment}: ${o.message}`);
        },
      });
      const table = summaryTable(report);
      if (format) {
        const text = writeReport(report, format);
        if (opts.out) writeFileSync(opts.out, text);
        else process.stdout.write(text);
      }
      if (json && !reportToStdout) console.log(JSON.stringify({ provider: report.provider, counts: report.counts }));
      else (reportToStdout ? process.stderr : process.stdout).write(table);
      if (report.counts.fail > 0) throw new ExitStatus(EXIT.PARTIAL);
    });

  vectors
    .command('list [files...]')
    .description('list the vector files, their groups and tests, and the coverage of apdu-spec')
    .addHelpText('after', '\nNo keys needed: it only reads the files.\n\nExample:\n  $ eticket vectors list\n  $ eticket --json vectors list test-vectors/rsa-*.json')
    .action(async (paths: string[], _opts: unknown, cmd: Command) => {
      const files = await vectorFiles(paths);
      const { coverage } = await import('../../test-vectors/coverage.js');
      for (const { path, file } of files) {
        emit(
          cmd,
          { file: path, suite: file.suite, area: file.area, tests: file.numberOfTests, groups: file.testGroups.map((g) => ({ comment: g.comment, fixture: g.fixture, tests: g.tests.length })) },
          [`${file.suite}-${file.area}: ${file.numberOfTests} tests`, ...file.testGroups.map((g, i) => `  group ${i} (${g.fixture.state}${g.fixture.capacity ? `, ${g.fixture.capacity} bytes` : ''}): ${g.tests.length} tests - ${g.comment}`)],
        );
      }
      const c = coverage(files.map((f) => f.file));
      const covered = c.pairs.filter((p) => p.covered).length;
      emit(cmd, { coverage: { pairs: covered, of: c.pairs.length, common: c.common.filter((x) => x.covered).length, commonOf: c.common.length, missing: c.missing } }, [
        `coverage: ${covered}/${c.pairs.length} (command, status word) pairs, ${c.common.filter((x) => x.covered).length}/${c.common.length} common status words${c.missing.length ? `; missing: ${c.missing.join(', ')}` : ''}`,
        ...c.common.filter((x) => x.unreachable).map((x) => `  ${x.sw} not covered: ${x.unreachable}`),
      ]);
    });
}
