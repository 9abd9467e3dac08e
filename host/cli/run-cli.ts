// Test helper: runs the real `eticket` process (node bin/eticket.mjs) with a working directory and a
// passphrase in its environment, and collects exit status, stdout and stderr.

import { spawn } from 'node:child_process';
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
  /** Kill the process and fail after this long (default 45 s), so a hang never outlives the test. */
  timeoutMs?: number;
}

export function cli(env: CliEnv, ...args: string[]): Promise<CliResult> {
  const vars: NodeJS.ProcessEnv = { ...process.env, ETICKET_HOME: env.home ?? env.cwd };
  delete vars.ETICKET_PASSPHRASE;
  if (env.passphrase !== null) vars.ETICKET_PASSPHRASE = env.passphrase ?? 'correct horse battery staple';
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: env.cwd, env: vars, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.stdin.end(env.stdin ?? '');
    const limit = env.timeoutMs ?? 45_000;
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
  const vars: NodeJS.ProcessEnv = { ...process.env, ETICKET_HOME: env.home ?? env.cwd, ETICKET_PASSPHRASE: env.passphrase ?? 'correct horse battery staple' };
  const child = spawn(process.execPath, [BIN, ...args], { cwd: env.cwd, env: vars, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}
