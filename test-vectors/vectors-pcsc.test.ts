// Every vector through the real PC/SC stack: PcscTransport → pcscd → vpcd → a card image served by a vpcd
// child process, a fresh image per group. Skipped with a printed reason without the stack unless ETICKET_PCSC=1.

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVpcdChild, type VpcdChild } from '../card/vpcd-child.js';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.js';
import { lockVpcd, pcscStack, VPCD_READER_0, VPCD_LOCK_HOOK_MS } from '../test/helpers/pcsc-stack.js';
import { ImageFactory, presetImage } from './providers.js';
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
          await child?.stop();
          child = undefined;
        },
        // A preset edits the image with the card out of the reader, then puts it back: a power cycle.
        async preset(p) {
          await transport.disconnect().catch(() => undefined);
          await child?.stop();
          presetImage(path, p);
          await insert();
          await transport.connect();
        },
      };
    },
    async close() {
      await child?.stop();
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
});
