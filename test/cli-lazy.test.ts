// The compiled CLI starts without its heavy modules: `eticket <command> --help`, for every command the program
// declares, loads no card, crypto, key, transport, vector or back-office module (host/cli/main.ts says why and
// how). A load-tracing hook records what each process loads; no timing is measured here (see the README).

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { commandPaths } from '../host/cli/main.js';
import { cli } from '../host/cli/run-cli.js';

const TRACE_HOOK = fileURLToPath(new URL('./helpers/load-trace.mjs', import.meta.url));

/** Modules an action may need but `--help` must never load: each costs start-up time on every invocation. */
const HEAVY = [
  /\/node_modules\/node-forge\//,
  /\/node_modules\/@noble\//,
  /\/node_modules\/pcsclite\//,
  /\/node_modules\/@electric-sql\//,
  /\/node_modules\/pg\//,
  /\/node_modules\/fastify\//,
  /\/node_modules\/@fastify\//,
  /\/dist\/card\//,
  /\/dist\/sdk\/crypto\//,
  /\/dist\/sdk\/roles\//,
  /\/dist\/test-vectors\//,
  /\/dist\/backoffice\//,
  /\/dist\/testing\//,
  /\/dist\/host\/(checking|issuing|personalize|session|gate-config|backoffice-client|realname)\.js$/,
  /\/dist\/host\/(transport|channel)\//,
  /\/dist\/host\/cli\/(workdir|store|demo|format)\.js$/,
];

const dir = mkdtempSync(join(tmpdir(), 'eticket-lazy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
async function loadedBy(...args: string[]): Promise<{ code: number | null; modules: string[]; stdout: string; stderr: string }> {
  const trace = join(dir, `trace-${++n}.txt`);
  const r = await cli({ cwd: dir, vars: { ETICKET_LOAD_TRACE: trace, NODE_OPTIONS: `--import ${TRACE_HOOK}` } }, ...args);
  let modules: string[] = [];
  try {
    modules = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  } catch {
    // No trace file: the hook did not run; the assertions below say so.
  }
  return { code: r.code, modules, stdout: r.stdout, stderr: r.stderr };
}

const heavyIn = (modules: string[]) => modules.filter((m) => HEAVY.some((h) => h.test(m)));

describe('eticket starts without its heavy modules', () => {
  const paths = [[], ...commandPaths()];

  it('the program declares the commands the docs name', () => {
    const names = paths.map((p) => p.join(' '));
    for (const c of ['demo', 'init', 'card create', 'card personalize', 'issue', 'tickets', 'gate', 'provision-gate', 'vectors run', 'keys rotate', 'seller add', 'service add', 'book', 'report sales', 'serve', 'inspect', 'realname limits', 'realname status', 'realname log', 'realname sweep', 'realname rotate-key', 'terminal grant', 'terminal grants', 'terminal ungrant']) expect(names).toContain(c);
  });

  it.each(paths.map((p) => [p.join(' ') || '(top level)', p]))('eticket %s --help loads no heavy module', async (_name, path) => {
    const r = await loadedBy(...(path as string[]), '--help');
    expect(r.code, r.stderr).toBe(0);
    expect(r.modules.some((m) => m.endsWith('/dist/host/cli/main.js')), 'the trace hook recorded the CLI itself').toBe(true);
    expect(heavyIn(r.modules)).toEqual([]);
  });

  it('without dist/ (a checkout not built) the command says to build, exit 70', async () => {
    const bare = join(dir, 'unbuilt');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    copyFileSync(fileURLToPath(new URL('../bin/eticket.mjs', import.meta.url)), join(bare, 'bin', 'eticket.mjs'));
    const r = await cli({ cwd: dir, bin: join(bare, 'bin', 'eticket.mjs') }, '--help');
    expect(r.code).toBe(70);
    expect(r.stderr).toMatch(/^eticket: the compiled CLI \(dist\/\) is missing: run `npm run build`/);
  });

  it('the trace sees heavy modules when an action needs them (card create loads the emulated card)', async () => {
    const r = await loadedBy('card', 'create', join(dir, 'card.img'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.modules.some((m) => m.endsWith('/dist/card/applet.js'))).toBe(true);
  });
});
