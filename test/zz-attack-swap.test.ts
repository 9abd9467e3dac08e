import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVpcdChild, type VpcdChild } from '../card/vpcd-child.ts';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.ts';
import { lockVpcd, pullCard, VPCD_READER_0 } from './helpers/pcsc-stack.ts';

const ECHO = fileURLToPath(new URL('./helpers/echo-icc.ts', import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const h = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

describe('attack: swaps', () => {
  let release = () => undefined as void;
  let card: VpcdChild | undefined;
  beforeAll(async () => { release = await lockVpcd(); }, 900_000);
  afterAll(async () => { await pullCard(card, 'kill').catch(() => undefined); release(); });

  it('50 swaps, alternating stop/kill, waitForCard then connect', async () => {
    const fails: string[] = [];
    const watcher = new PcscTransport({ reader: VPCD_READER_0 });
    const events: string[] = [];
    const off = watcher.onCardEvent((e) => events.push(e.type === 'inserted' ? `ins:${hex(e.atr)}` : 'rem'));
    for (let i = 0; i < 50; i++) {
      const t0 = Date.now();
      await pullCard(card, i % 2 ? 'kill' : 'stop');
      const tPull = Date.now() - t0;
      card = await startVpcdChild({ module: ECHO, export: 'createEchoIcc', args: [{ name: `S${i}` }] }, { port: 35963 });
      const tStart = Date.now() - t0;
      await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
      const t = new PcscTransport({ reader: VPCD_READER_0 });
      try {
        const atr = hex(await t.connect());
        if (atr !== hex(card.atr)) fails.push(`swap ${i}: ATR ${atr} != ${hex(card.atr)}`);
        const r = hex(await t.transmit(h('8030000002')));
        if (r !== '00009000') fails.push(`swap ${i}: transmit ${r}`);
      } catch (e) {
        fails.push(`swap ${i}: ${(e as Error).message}`);
      } finally { await t.disconnect(); }
      if (i % 10 === 0) console.log(`swap ${i}: pull ${tPull} ms, start ${tStart} ms`);
    }
    await new Promise((r) => setTimeout(r, 1000));
    off(); await watcher.disconnect();
    console.log('FAILS', fails);
    console.log('EVENTS', events.length, events.filter((e) => e === 'rem').length, 'removed');
    const ins = events.filter((e) => e.startsWith('ins'));
    console.log('distinct inserted ATRs', new Set(ins).size);
    expect(fails).toEqual([]);
  });

  it('40 swaps, connect immediately after startVpcdChild (no waitForCard)', async () => {
    const fails: string[] = [];
    for (let i = 0; i < 40; i++) {
      await pullCard(card, i % 2 ? 'kill' : 'stop');
      card = await startVpcdChild({ module: ECHO, export: 'createEchoIcc', args: [{ name: `I${i}` }] }, { port: 35963 });
      const t = new PcscTransport({ reader: VPCD_READER_0 });
      try {
        const atr = hex(await t.connect());
        if (atr !== hex(card.atr)) fails.push(`swap ${i}: ATR ${atr} != ${hex(card.atr)}`);
        const r = hex(await t.transmit(h('8030000002')));
        if (r !== '00009000') fails.push(`swap ${i}: transmit ${r}`);
      } catch (e) {
        fails.push(`swap ${i}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
      } finally { await t.disconnect(); }
    }
    console.log('IMMEDIATE FAILS', fails.length, fails);
  });
});
