// The `eticket` command line: commander program, global options, exit codes and error reporting.
// Each subcommand lives in its own module and registers itself here.
//
// Start-up stays fast (`eticket --help` well under 0.3 s) because nothing heavy loads until an action runs.
// The pattern for every subcommand module (cmd-*.ts), new ones included:
//   - at the top, import only what declaring the command needs: commander, node built-ins, ./context.js,
//     other cmd-*.ts option helpers, and the light sdk modules (errors, bytes, spec, fields); import everything
//     else with `import type` (erased at compile time);
//   - inside the action, load what it runs with `const { X } = await import('../x.js')`: terminals, sessions,
//     transports, card, crypto, key store, vectors, back-office client and store. The async helpers of
//     context.ts (workDir, openImage, openTransport, withCard) load theirs the same way.
// test/cli-lazy.test.ts runs `eticket <command> --help` for every command and fails when one of the heavy
// modules (its list is there) is loaded: add new heavy dependencies to that list.

import { Command, CommanderError } from 'commander';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { registerCard, registerInit } from './cmd-card.js';
import { registerClients } from './cmd-clients.js';
import { registerKeys } from './cmd-keys.js';
import { registerSales } from './cmd-sales.js';
import { registerServe } from './cmd-serve.js';
import { registerOffline } from './cmd-offline.js';
import { registerSimulate } from './cmd-simulate.js';
import { registerRealName } from './cmd-realname.js';
import { registerGate, registerProvisionGate } from './cmd-gate.js';
import { registerIssue, registerLoad } from './cmd-issue.js';
import { registerRaw } from './cmd-raw.js';
import { registerTickets } from './cmd-tickets.js';
import { registerVectors } from './cmd-vectors.js';
import { errorLine, EXIT, exitCodeFor, ExitStatus, globals } from './context.js';

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
    .option('--tz <zone>', "operator time zone for service dates (IANA name, e.g. Asia/Shanghai; default $ETICKET_TZ, else the working directory's, else UTC)")
    .option('--debug', 'print stack traces on errors')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 usage or input, 2 card refused, 3 reader / transport / card image,
4 batch partly failed, 5 wrong passphrase or failed signature, 6 gate rejected,
7 card image or store in use by another process, 8 holder data refused (inspect),
70 internal, 141 output closed (EPIPE).

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
      const { runDemo } = await import('./demo.js');
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
  registerProvisionGate(program);
  registerRealName(program);
  registerRaw(program);
  registerVectors(program);
  registerKeys(program);
  registerClients(program);
  registerSales(program);
  registerServe(program);
  registerOffline(program);
  registerSimulate(program);
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
    process.exitCode = await exitCodeFor(e);
    // The command has reported its results (a batch's failures, a gate's REJECT); only the status is left.
    if (e instanceof ExitStatus) return;
    // Under --json a script gets the error as JSON too (on stderr: stdout carries only results).
    if (program.opts().json) console.error(JSON.stringify({ ok: false, error: errorLine(e), exitCode: process.exitCode, kind: e instanceof Error ? e.constructor.name : typeof e }));
    else console.error(`eticket: ${errorLine(e)}`);
    if (argv.includes('--debug')) console.error((e as Error)?.stack);
  }
}

/** Every command's path in the program, e.g. ['card', 'create'] (tests walk them). */
export function commandPaths(cmd: Command = buildProgram(), prefix: string[] = []): string[][] {
  return cmd.commands.flatMap((c) => [[...prefix, c.name()], ...commandPaths(c, [...prefix, c.name()])]);
}

/** Run as a program (bin/eticket.mjs, or `node dist/host/cli/main.js`), not when imported. */
export async function run(argv = process.argv): Promise<never> {
  // A closed output (a pipe whose reader exited): stop with the code a shell gives a tool SIGPIPE killed, one line on
  // stderr, not an unhandled 'error' event with its stack. Whatever was done is kept, as after kill -9 (docs/cli.md).
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    try {
      const error = 'the output was closed (EPIPE): stopped; what was done is kept (a batch: re-run it, nothing is issued twice)';
      console.error(argv.includes('--json') ? JSON.stringify({ ok: false, error, exitCode: EXIT.OUTPUT_CLOSED, kind: 'OutputClosed' }) : `eticket: ${error}`);
    } catch {
      // stderr closed too
    }
    process.exit(EXIT.OUTPUT_CLOSED);
  });
  await main(argv);
  // Done: a native handle (a PC/SC context closing behind a failed call) must not keep the command alive.
  // stdout and stderr are synchronous for files and pipes on POSIX, so nothing printed is lost.
  process.exit();
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) await run();
