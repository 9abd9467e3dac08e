// `eticket gate` keeps serving after hostile cards (issue 10, item 3): a gate loop on a PC/SC reader meets a
// card answering 61XX for ever, then one answering WRITE USAGE with a malformed receipt, then a genuine card,
// and prints one JSON line per tap: REJECT card_error, REJECT card_error, PASS. Runs with pcscd + vpcd.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVpcdChild } from '../card/vpcd-child.ts';
import { cli, cliProcess, type CliEnv } from '../host/cli/run-cli.ts';
import { listReaders } from '../host/transport/pcsc.ts';
import type { Hostility } from './helpers/hostile-card.ts';
import { lockVpcd, pcscStack, VPCD_READER_1, waitUntil } from './helpers/pcsc-stack.ts';

const stack = pcscStack();
if (!stack.ok) console.warn(`[skip] hostile cards at a PC/SC gate: ${stack.reason}`);

const HOSTILE = fileURLToPath(new URL('./helpers/hostile-card.ts', import.meta.url));
const APPLET = fileURLToPath(new URL('../card/applet.ts', import.meta.url));
const PORT = 35964;

describe.skipIf(!stack.ok)('eticket gate on a reader, against hostile cards', () => {
  let release: () => void = () => undefined;
  let dir = '';
  let env: CliEnv;

  beforeAll(async () => {
    release = await lockVpcd();
    dir = mkdtempSync(join(tmpdir(), 'eticket-hostile-'));
    env = { cwd: dir };
    expect((await cli(env, 'init')).code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    for (const name of ['forever', 'garbage', 'good']) {
      expect((await cli(env, 'card', 'create', `${name}.img`)).code).toBe(0);
      expect((await cli(env, 'card', 'personalize', '--card', `${name}.img`)).code).toBe(0);
      expect((await cli(env, 'issue', '--card', `${name}.img`, '--service-date', today, '--train', 'G1', '--origin', 'BJS', '--tid', `T-${name}`)).code).toBe(0);
    }
  }, 300_000); // the vpcd readers may be taken by another test process for a while

  afterAll(() => {
    release();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints REJECT card_error for each hostile card and PASS for the next genuine one, one JSON line per tap', async () => {
    const gate = cliProcess(env, '--json', 'gate', '--reader', VPCD_READER_1, '--station', 'BJS', '--direction', 'entry');
    const lines = () => gate.output().stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
    const present = async (n: number, card: { image: string; hostility?: Hostility }) => {
      const child = await startVpcdChild(
        card.hostility ? { module: HOSTILE, export: 'openHostileCardImage', args: [join(dir, card.image), card.hostility] } : { module: APPLET, export: 'openCardImage', args: [join(dir, card.image)] },
        { port: PORT },
      );
      try {
        await waitUntil(() => lines().length >= n || gate.output().stderr.includes('Error'), 30_000, `tap ${n} to be reported`);
      } finally {
        await child.stop();
      }
      await waitUntil(async () => !(await listReaders()).find((r) => r.name === VPCD_READER_1)?.cardPresent, 5000, 'the reader to be empty', 50);
    };
    try {
      await present(1, { image: 'forever.img', hostility: { kind: 'get-response-forever' } });
      await present(2, { image: 'garbage.img', hostility: { kind: 'garbage-receipt', receipt: 'a TID that is not UTF-8' } });
      await present(3, { image: 'good.img' });
    } finally {
      gate.child.kill('SIGINT');
    }
    expect(await gate.exited).toBe(0);
    expect(gate.output().stderr).toBe('');
    const taps = lines();
    expect(taps).toHaveLength(3);
    expect(taps[0]).toMatchObject({ pass: false, reason: 'card_error', message: expect.stringMatching(/SELECT: the card misbehaved \(getResponseRounds\)/) });
    expect(taps[1]).toMatchObject({ pass: false, reason: 'card_error', tid: 'T-garbage', message: expect.stringMatching(/WRITE USAGE: the card misbehaved \(answer\)/) });
    expect(taps[2]).toMatchObject({ pass: true, tid: 'T-good' });
  }, 180_000);
});
