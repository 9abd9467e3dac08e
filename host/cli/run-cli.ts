// Test helper: runs the real `eticket` process (node bin/eticket.mjs: the compiled CLI in dist/, built by the
// test setup) with a working directory and a passphrase in its environment; collects exit status and output.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/eticket.mjs', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout split into JSON values, one a line (for --json). */
  json: () => Record<string, unknown>[];
}

export interface CliEnv {
  /** Working directory of the process (card images are relative to it). */
  cwd: string;
  home?: string;
  passphrase?: string | null;
  stdin?: string;
  /** Kill the process and fail after this long (default 180 s): a guard against hangs, never a speed check. */
  timeoutMs?: number;
  /** Extra environment variables. */
  vars?: NodeJS.ProcessEnv;
  /** The eticket script to run (default: this checkout's bin/eticket.mjs; the package test runs the installed one). */
  bin?: string;
  /** cliProcess only: its stdin, 'pipe' (written through `child.stdin`) or a socket it reads (default: none). */
  input?: 'pipe' | import('node:net').Socket;
}

/**
 * At most this many `eticket` processes at once per test file, however many a test starts together: on a
 * loaded 2-core machine a burst of processes only makes each of them slow.
 */
export const CLI_PARALLELISM = 2;
let running = 0;
const waiting: (() => void)[] = [];

async function slot(): Promise<() => void> {
  while (running >= CLI_PARALLELISM) await new Promise<void>((r) => waiting.push(r));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

export async function cli(env: CliEnv, ...args: string[]): Promise<CliResult> {
  const release = await slot();
  try {
    return await spawnCli(env, args);
  } finally {
    release();
  }
}

function spawnCli(env: CliEnv, args: string[]): Promise<CliResult> {
  const vars: NodeJS.ProcessEnv = { ...process.env, ETICKET_HOME: env.home ?? env.cwd, ...env.vars };
  delete vars.ETICKET_PASSPHRASE;
  if (env.passphrase !== null) vars.ETICKET_PASSPHRASE = env.passphrase ?? 'correct horse battery staple';
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [env.bin ?? BIN, ...args], { cwd: env.cwd, env: vars, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.stdin.end(env.stdin ?? '');
    const limit = env.timeoutMs ?? 180_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`eticket ${args.join(' ')} did not exit within ${limit} ms; killed. stderr so far: ${stderr.slice(-400)}`));
    }, limit);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout,
        stderr,
        json: () =>
          stdout
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l) as Record<string, unknown>),
      });
    });
  });
}

/** Start a long-running CLI process (serve, gate loop); the caller signals and awaits it. */
export function cliProcess(env: CliEnv, ...args: string[]) {
  const vars: NodeJS.ProcessEnv = { ...process.env, ETICKET_HOME: env.home ?? env.cwd, ETICKET_PASSPHRASE: env.passphrase ?? 'correct horse battery staple', ...env.vars };
  const child = spawn(process.execPath, [env.bin ?? BIN, ...args], { cwd: env.cwd, env: vars, stdio: [env.input ?? 'ignore', 'pipe', 'pipe'] }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}
