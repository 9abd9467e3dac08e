// The CLI against the real PC/SC stack: `card serve` puts an image into vpcd, then `readers`, `tickets`,
// `gate` and `apdu` reach it through pcscd as through any reader. Runs only with ETICKET_PCSC=1.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockVpcd, pcscStack, VPCD_READER_1, waitUntil, VPCD_LOCK_HOOK_MS } from '../../test/helpers/pcsc-stack.js';
import { cli, cliProcess, type CliEnv } from './run-cli.js';

const wanted = process.env.ETICKET_PCSC === '1';
const stack = wanted ? pcscStack() : { ok: false, reason: 'set ETICKET_PCSC=1 to run the CLI against pcscd + vpcd' };
if (!stack.ok) console.log(`skipping CLI PC/SC tests: ${stack.reason}`);

describe.skipIf(!stack.ok)('eticket CLI over PC/SC (vpcd)', () => {
  let dir: string;
  let env: CliEnv;
  let release: () => void = () => undefined;

  beforeAll(async () => {
    release = await lockVpcd();
    dir = mkdtempSync(join(tmpdir(), 'eticket-cli-pcsc-'));
    env = { cwd: dir };
    expect((await cli(env, 'init')).code).toBe(0);
    expect((await cli(env, 'card', 'create', 'card.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'card.img')).code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    expect((await cli(env, 'issue', '--card', 'card.img', '--service-date', today, '--train', 'G1', '--origin', 'BJS', '--tid', 'P1')).code).toBe(0);
  }, VPCD_LOCK_HOOK_MS);

  afterAll(() => {
    release();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serve, then readers / tickets / gate / apdu through the reader; Ctrl-C takes the card out (exit 0)', async () => {
    const serve = cliProcess(env, 'card', 'serve', '--card', 'card.img', '--slot', '1');
    try {
      await waitUntil(() => serve.output().stdout.includes('Ctrl-C'), 15_000, 'card serve to insert the card');
      const readers = await cli(env, '--json', 'readers');
      expect(readers.code).toBe(0);
      expect(readers.json()[0].readers).toContainEqual(expect.objectContaining({ name: VPCD_READER_1, cardPresent: true }));

      const tickets = await cli(env, 'tickets', '--reader', VPCD_READER_1);
      expect(tickets.code).toBe(0);
      expect(tickets.stdout).toMatch(/P1 .* G1/);

      const gate = await cli(env, 'gate', '--reader', VPCD_READER_1, '--once', '--station', 'BJS', '--direction', 'entry');
      expect(gate.stdout).toMatch(/^PASS P1/);
      expect(gate.code).toBe(0);

      // A raw command through the reader, answered by the card: GET DATA DA (the protocol version) is open on a
      // personalised card under protocol v2 (D8 and the other identifying objects answer 6982 before EXTERNAL
      // AUTHENTICATE, apdu-spec README).
      const apdu = await cli(env, 'apdu', '--reader', VPCD_READER_1, '--select', '80CA00DA00');
      expect(apdu.code).toBe(0);
      expect(apdu.stdout).toMatch(/> 80CA00DA00 {2}GET DATA\n< 02 9000 {2}SUCCESS/);
    } finally {
      serve.child.kill('SIGINT');
    }
    expect(await serve.exited).toBe(0);
    expect(serve.output().stdout).toMatch(/taken out/);
  });

  it('an unknown reader is a reader error (3) naming the readers there are', async () => {
    const r = await cli(env, 'tickets', '--reader', 'No Such Reader 99');
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no PC\/SC reader matches "No Such Reader 99" \(readers: .*Virtual PCD.*eticket readers/);
  });

  it('an empty reader says "no card in" the reader (3), not that a card was removed', async () => {
    const r = await cli(env, 'tickets', '--reader', VPCD_READER_1);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no card in "Virtual PCD 00 01"/);
    expect(r.stderr).not.toMatch(/removed/);
  });

  it('a batch whose card is pulled ends with its JSON summary: rows done, the one interrupted, the rest not attempted (3)', async () => {
    const today = new Date().toISOString().slice(0, 10);
    writeFileSync(join(dir, 'pulled.csv'), ['serviceDate,train', ...Array.from({ length: 60 }, (_, i) => `${today},PU${i}`)].join('\n') + '\n');
    const serve = cliProcess(env, 'card', 'serve', '--card', 'card.img', '--slot', '1');
    await waitUntil(() => serve.output().stdout.includes('Ctrl-C'), 15_000, 'card serve to insert the card');
    const batch = cliProcess(env, '--json', 'issue', '--reader', VPCD_READER_1, '--from', 'pulled.csv');
    try {
      await waitUntil(() => (batch.output().stdout.match(/"status":"loaded"/g) ?? []).length >= 2, 120_000, 'two rows loaded');
    } finally {
      serve.child.kill('SIGINT'); // the card leaves the reader mid-batch
    }
    await serve.exited;
    expect(await batch.exited).toBe(3);
    const lines = batch.output().stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.at(-1)!;
    expect(summary).toMatchObject({ summary: true, total: 60, interrupted: 1, stoppedBy: expect.stringMatching(/removed|no card/) });
    const done = summary.done as number[];
    const remaining = summary.remaining as number[];
    expect(done.length).toBeGreaterThanOrEqual(2);
    expect([...done, ...remaining].sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 2));
    expect(lines.filter((l) => l.status === 'not_attempted')).toHaveLength(remaining.length - 1);
  }, 300_000);

  it('a gate loop on a reader stops cleanly on SIGINT', async () => {
    const gate = cliProcess(env, 'gate', '--reader', VPCD_READER_1, '--station', 'BJS', '--direction', 'exit');
    await waitUntil(() => gate.output().stderr.includes('waiting for cards'), 15_000, 'the gate loop to start');
    gate.child.kill('SIGINT');
    expect(await gate.exited).toBe(0);
    expect(gate.output().stderr).toMatch(/gate stopped after 0 tap/);
  });
});
