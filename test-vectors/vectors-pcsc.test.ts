// Every vector through the real PC/SC stack: PcscTransport → pcscd → vpcd → a card image served by a vpcd
// child process, a fresh image per group. Skipped with a printed reason without the stack unless ETICKET_PCSC=1.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { startVpcdChild, type VpcdChild } from '../card/vpcd-child.js';
import { IssuingTerminal } from '../host/issuing.js';
import { CardSession } from '../host/session.js';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.js';
import { lockVpcd, pcscStack, pullCard, VPCD_READER_0, VPCD_LOCK_HOOK_MS } from '../test/helpers/pcsc-stack.js';
import { ImageFactory, presetImage, readerProvider, testAuthorizer } from './providers.js';
import { loadTestKeys } from './testkeys.js';
import { summaryTable } from './reports.js';
import { loadVectorFiles, runVectors, type CardProvider } from './runner.js';

const DIR = fileURLToPath(new URL('./', import.meta.url));
const APPLET = fileURLToPath(new URL('../card/applet.ts', import.meta.url));
const files = loadVectorFiles(readdirSync(DIR).filter((f) => /^[a-z0-9]+-[a-z-]+\.json$/.test(f)).map((f) => `${DIR}${f}`));

const stack = pcscStack();
if (!stack.ok) console.warn(`[skip] vectors over PC/SC: ${stack.reason}`);

/** Each group gets a fresh image, put into vpcd's first reader by a child process (one card process at a time). */
function vpcdProvider(): CardProvider {
  const images = new ImageFactory();
  let child: VpcdChild | undefined;
  return {
    label: `${VPCD_READER_0} (pcscd + vpcd, fresh image per group)`,
    reusesCards: false,
    async acquire(fixture, keys) {
      const path = await images.make(fixture, keys);
      const insert = async () => {
        child = await startVpcdChild({ module: APPLET, export: 'openCardImage', args: [path] }, { port: 35963 });
        await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
      };
      await insert();
      const transport = new PcscTransport({ reader: VPCD_READER_0 });
      return {
        transport,
        release: async () => {
          await transport.disconnect().catch(() => undefined);
          await pullCard(child);
          child = undefined;
        },
        // A preset edits the image with the card out of the reader, then puts it back: a power cycle.
        async preset(p) {
          await transport.disconnect().catch(() => undefined);
          await pullCard(child);
          presetImage(path, p);
          await insert();
          await transport.connect();
        },
      };
    },
    async close() {
      await pullCard(child);
      images.close();
    },
  };
}

describe.skipIf(!stack.ok)('vectors through PcscTransport, pcscd and vpcd', () => {
  let release: () => void = () => undefined;

  beforeAll(async () => {
    release = await lockVpcd();
  }, VPCD_LOCK_HOOK_MS);

  afterAll(() => release());

  it('all pass', async () => {
    const r = await runVectors(files, vpcdProvider());
    const failed = r.outcomes.filter((o) => o.status === 'fail');
    if (failed.length) console.error(summaryTable(r));
    expect(failed.map((o) => `${o.file} ${o.tcId}: ${o.message}`)).toEqual([]);
    expect(r.counts.skip).toBe(0);
    expect(r.counts.pass).toBe(files.reduce((n, f) => n + f.file.numberOfTests, 0));
  }, 900_000); // a hang guard: every vector through pcscd took 35 s idle (v1); v2's 837 took 478 s at load average 15 on 2 cores, when the same vectors in process took 256 s

  it('run 10 times on one blank RSA card in the reader: personalised by the first, every run passes, the free space returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eticket-vectors-10-'));
    const image = join(dir, 'card.img');
    EticketCard.create(image, { suite: 'rsa' });
    const child = await startVpcdChild({ module: APPLET, export: 'openCardImage', args: [image] }, { port: 35963 });
    try {
      await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
      const rsa = files.filter((f) => f.file.suite === 'rsa');
      const free = async () => {
        const transport = new PcscTransport({ reader: VPCD_READER_0 });
        try {
          return await new IssuingTerminal(new CardSession(transport), { authorize: testAuthorizer(loadTestKeys('rsa')) }).capacity();
        } finally {
          await transport.disconnect().catch(() => undefined);
        }
      };
      const runs: { failed: string[]; pass: number; freeBytes: number; tickets: number }[] = [];
      for (let run = 0; run < 10; run++) {
        const r = await runVectors(rsa, readerProvider({ reader: VPCD_READER_0 }));
        const c = await free();
        runs.push({ failed: r.outcomes.filter((o) => o.status === 'fail').map((o) => `${o.file} ${o.tcId}: ${o.message}`), pass: r.counts.pass, freeBytes: c.freeBytes, tickets: c.tickets });
      }
      for (const [run, x] of runs.entries()) {
        expect(x.failed, `run ${run + 1}`).toEqual([]);
        expect(x.tickets, `run ${run + 1} left tickets`).toBe(0);
        expect(x.freeBytes, `run ${run + 1}: free bytes`).toBe(runs[0].freeBytes);
      }
      expect(runs[0].pass).toBeGreaterThan(runs[1].pass); // the first also ran the personalisation vectors
      expect(new Set(runs.slice(1).map((x) => x.pass)).size).toBe(1);
    } finally {
      await pullCard(child);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 3_600_000); // a hang guard: ten runs of the RSA vectors through pcscd, several minutes idle; at load average 15 one run of all vectors took 478 s
});
