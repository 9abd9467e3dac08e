// The `eticket` command line: commander program, global options, exit codes and error reporting.
// Each subcommand lives in its own module and registers itself here.

import { Command } from 'commander';
import { runDemo } from './demo.js';

/** Documented, stable exit codes (README "Exit codes"). */
export const EXIT = { OK: 0, USAGE: 1, CARD_REFUSED: 2, TRANSPORT: 3, PARTIAL: 4, INTERNAL: 70 } as const;

export function buildProgram(): Command {
  const program = new Command();
  program.name('eticket').description('E-ticket smart-card system: cards, issuance, gates, conformance vectors').option('--debug', 'print stack traces on errors');
  program
    .command('demo')
    .description('run the whole e-ticket flow on the embedded emulator')
    .option('--suite <suite>', 'crypto suite: rsa or sm9', 'rsa')
    .option('--json', 'print one JSON document instead of text')
    .addHelpText('after', '\nExample:\n  $ eticket demo\n  $ eticket demo --json | jq .steps[].step')
    .action(async (opts: { suite: 'rsa' | 'sm9'; json?: boolean }) => {
      const steps = await runDemo({ suite: opts.suite, log: opts.json ? undefined : (l) => console.log(l) });
      if (opts.json) console.log(JSON.stringify({ ok: steps.every((s) => s.ok), steps }, null, 2));
      if (!steps.every((s) => s.ok)) process.exitCode = EXIT.INTERNAL;
    });
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const debug = argv.includes('--debug');
    console.error(`eticket: ${(e as Error).message}`);
    if (debug) console.error((e as Error).stack);
    process.exitCode = EXIT.INTERNAL;
  }
}

await main();
