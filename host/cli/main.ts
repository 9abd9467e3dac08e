// The `eticket` command line: commander program, global options, exit codes and error reporting.
// Each subcommand lives in its own module and registers itself here.

import { Command, CommanderError } from 'commander';
import { registerCard, registerInit } from './cmd-card.js';
import { registerClients } from './cmd-clients.js';
import { registerKeys } from './cmd-keys.js';
import { registerSales } from './cmd-sales.js';
import { registerServe } from './cmd-serve.js';
import { registerRealName } from './cmd-realname.js';
import { registerGate } from './cmd-gate.js';
import { registerIssue, registerLoad } from './cmd-issue.js';
import { registerRaw } from './cmd-raw.js';
import { registerTickets } from './cmd-tickets.js';
import { registerVectors } from './cmd-vectors.js';
import { errorLine, EXIT, exitCodeFor, ExitStatus, globals } from './context.js';
import { runDemo } from './demo.js';

/** Documented, stable exit codes (docs/cli.md "Exit codes"); defined in context.ts, where commands use them. */
export { EXIT };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('eticket')
    .description('E-ticket smart-card system: cards, issuance, gates, conformance vectors')
    .option('--dir <path>', 'working directory (default: $ETICKET_HOME, else the current directory)')
    .option('--json', 'machine output: JSON (one document, or one line per ticket / tap / APDU)')
    .option('--record <file>', 'record every APDU exchanged with the card to <file> (apdu4j dump; see `eticket trace`)')
    .option('--database <url>', 'back-office store on a PostgreSQL server (postgres://…; default $ETICKET_DATABASE_URL, else the embedded store in the working directory)')
    .option('--wait <seconds>', 'how long to wait when another eticket process holds the embedded store (default 30)')
    .option('--debug', 'print stack traces on errors')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 usage or input, 2 card refused, 3 reader / transport / card image,
4 batch partly failed, 5 wrong passphrase or failed signature, 6 gate rejected,
7 card image or store in use by another process, 70 internal.

Example:
  $ export ETICKET_PASSPHRASE=... ETICKET_HOME=./office
  $ eticket init && eticket card create card.img && eticket card personalize --card card.img
  $ eticket issue --card card.img --from tickets.csv`,
    );
  program
    .command('demo')
    .description('run the whole e-ticket flow on the embedded emulator')
    .option('--suite <suite>', 'crypto suite: rsa or sm9', 'rsa')
    .addHelpText('after', '\nExample:\n  $ eticket demo\n  $ eticket demo --json | jq .steps[].step')
    .action(async (opts: { suite: 'rsa' | 'sm9' }, cmd: Command) => {
      const json = globals(cmd).json;
      const steps = await runDemo({ suite: opts.suite, log: json ? undefined : (l) => console.log(l) });
      if (json) console.log(JSON.stringify({ ok: steps.every((s) => s.ok), steps }, null, 2));
      if (!steps.every((s) => s.ok)) process.exitCode = EXIT.INTERNAL;
    });
  registerInit(program);
  registerCard(program);
  registerIssue(program);
  registerLoad(program);
  registerTickets(program);
  registerGate(program);
  registerRealName(program);
  registerRaw(program);
  registerVectors(program);
  registerKeys(program);
  registerClients(program);
  registerSales(program);
  registerServe(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed the message (or the help) itself.
      process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    process.exitCode = exitCodeFor(e);
    // The command has reported its results (a batch's failures, a gate's REJECT); only the status is left.
    if (e instanceof ExitStatus) return;
    console.error(`eticket: ${errorLine(e)}`);
    if (argv.includes('--debug')) console.error((e as Error)?.stack);
  }
}

await main();
// Done: a native handle (a PC/SC context closing behind a failed call) must not keep the command alive.
// stdout and stderr are synchronous for files and pipes on POSIX, so nothing printed is lost.
process.exit();
