// The PC/SC benchmark (bench/pcsc.ts) on pcscd + vpcd, in a process of its own as `npm run bench` runs it: its
// figures, and a process that ends once it is done. Every reader pcsclite reports watches its slot until closed;
// vpcd has two, and the benchmark used to close only the one it measured, so `npm run bench` with pcscd up printed
// its results and then stayed alive for minutes.

import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pcscStack } from '../test/helpers/pcsc-stack.js';

const stack = pcscStack();
const MODULE = new URL('../dist/bench/pcsc.js', import.meta.url).href;

describe.skipIf(!stack.ok)('benchGateOverPcsc on pcscd + vpcd', () => {
  it('times taps over PC/SC beside the emulator, and its process exits by itself once the figures are out', async () => {
    const script = `const { benchGateOverPcsc } = await import(${JSON.stringify(MODULE)});
const r = await benchGateOverPcsc({ iterations: 5, roundTripIterations: 10, warmup: 1 });
process.stdout.write(JSON.stringify(r) + '\\n');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let printedAt = 0;
    let lingered: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!out.endsWith('\n') || printedAt) return;
      printedAt = performance.now();
      lingered = setTimeout(() => child.kill('SIGKILL'), 20_000); // a process that does not end is the failure
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    // The benchmark waits for the vpcd lock other test files hold (testing/vpcd-lock.ts): a generous outer bound.
    const killer = setTimeout(() => child.kill('SIGKILL'), 880_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearTimeout(killer);
    clearTimeout(lingered);
    // Once printed, nothing is left open: the process ends within seconds, not when pcsclite gives up.
    expect(printedAt, err).toBeGreaterThan(0);
    expect(performance.now() - printedAt, 'still running 20 s after its figures').toBeLessThan(15_000);
    expect(code, err).toBe(0);
    const r = JSON.parse(out) as { apdusPerGate: number; gate: { pcsc: { medianMs: number }; inProcess: { medianMs: number } } };
    expect(r.apdusPerGate).toBe(3);
    expect(r.gate.pcsc.medianMs).toBeGreaterThan(r.gate.inProcess.medianMs);
  }, 900_000);
});
