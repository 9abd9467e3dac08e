// `eticket issue`'s back-office thread, started by bin/eticket.mjs before the CLI's own modules load: the thread's
// start-up (Node's worker bootstrap, the back office's modules, PGlite's WebAssembly compiled) runs beside the
// command's parsing instead of after it. The thread opens nothing until the command hands it its working directory,
// store settings and passphrase (issue-office.ts openIssueOffice): a command that never does (`issue --help`, a
// usage error) leaves a thread that holds no lock and no file, and ends with the process. Nothing here but
// node:worker_threads and node:v8, so that the early import costs nothing measurable.

import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';

/** The thread's entry, compiled (bin/eticket.mjs runs only dist/). */
const THREAD_ENTRY = new URL('./issue-office-thread.js', import.meta.url);

/** What a prestarted thread is told at its start (workerData). */
export interface PrestartData {
  prestart: true;
  /** Compile PGlite's WebAssembly ahead: false when the command names a PostgreSQL server (no PGlite then). */
  compilePglite: boolean;
}

let prestarted: Worker | undefined;

/** The program's options that take a value (host/cli/main.ts): skipped with it when looking for the command. */
const GLOBAL_VALUE_OPTIONS = new Set(['--dir', '--record', '--database', '--wait', '--tz']);

/** The command `argv` names (its first word that is neither an option nor a global option's value), if any. */
export function commandOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return argv[i + 1];
    if (!a.startsWith('-')) return a;
    if (GLOBAL_VALUE_OPTIONS.has(a)) i++;
  }
  return undefined;
}

/**
 * V8 decides whether to hand a JavaScript function to its optimising compiler (TurboFan) each time the function
 * has run its interrupt budget of bytecode (--interrupt-budget, 67,584 by default): in a command of two seconds,
 * hundreds of functions (the ESM loader's, node:crypto's wrappers, the card's codecs, PostgreSQL's glue) are
 * compiled on V8's background threads, about 0.7 s of CPU in a 1,000-row `eticket issue` on the two cores the batch
 * itself needs, for code that then runs a second or less. A budget of SHORT_COMMAND_INTERRUPT_BUDGET leaves them in
 * the interpreter and the baseline compiler (Sparkplug) until they have run 300 times as much: the batch's CPU falls
 * by about 0.4 s and its time by 5-10 % (docs/performance.md). A long batch still optimises what stays hot. V8's
 * flags are the process's: set before the CLI's own modules load, for `issue` only; ETICKET_INTERRUPT_BUDGET sets
 * another budget (0: V8's own).
 */
export const SHORT_COMMAND_INTERRUPT_BUDGET = 20_000_000;

export function tuneJitForShortCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): void {
  if (commandOf(argv) !== 'issue') return;
  const given = env.ETICKET_INTERRUPT_BUDGET;
  const budget = given === undefined || given === '' ? SHORT_COMMAND_INTERRUPT_BUDGET : Number(given);
  if (!Number.isSafeInteger(budget) || budget <= 0) return;
  setFlagsFromString(`--interrupt-budget=${budget}`);
}

/**
 * Start the thread when `argv` (process.argv after node and the script) is `eticket issue`; a no-op otherwise,
 * when the thread is turned off (ETICKET_STORE_THREAD=0), or when it was started already. Never throws: the command
 * then starts its thread itself, as without a prestart.
 */
export function prestartIssueOffice(argv: string[], env: NodeJS.ProcessEnv = process.env): void {
  if (prestarted || env.ETICKET_STORE_THREAD === '0' || commandOf(argv) !== 'issue' || argv.includes('--help') || argv.includes('-h')) return;
  try {
    const data: PrestartData = { prestart: true, compilePglite: !env.ETICKET_DATABASE_URL && !argv.some((a) => a === '--database' || a.startsWith('--database=')) };
    const worker = new Worker(THREAD_ENTRY, { workerData: data });
    // Unused, it must not keep the process alive (run() exits anyway); a failure is the command's to find at adoption.
    worker.unref();
    const failed = () => {
      if (prestarted === worker) prestarted = undefined;
    };
    worker.once('error', failed);
    worker.once('exit', failed);
    prestarted = worker;
  } catch {
    prestarted = undefined;
  }
}

/** The prestarted thread, if one is running and not taken yet; the caller owns it from now on (ref'd again). */
export function takePrestartedIssueOffice(): Worker | undefined {
  const w = prestarted;
  prestarted = undefined;
  w?.removeAllListeners('error');
  w?.removeAllListeners('exit');
  w?.ref();
  return w;
}
