// The vpcd bridge: its wire protocol against a fake vpcd (always runs), then real pcscd + vpcd with two cards
// at once and stock PC/SC tools (opensc-tool, scriptor) talking to the virtual card (skipped without the stack).

import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.ts';
import { EchoIcc } from '../test/helpers/echo-icc.ts';
import { lockVpcd, pcscStack, VPCD_READER_0, VPCD_READER_1, waitUntil } from '../test/helpers/pcsc-stack.ts';
import { startVpcdChild, type VpcdChild } from './vpcd-child.ts';
import { VpcdBridge, type VpcdEvent } from './vpcd.ts';

const ECHO_MODULE = fileURLToPath(new URL('../test/helpers/echo-icc.ts', import.meta.url));
const h = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
const run = promisify(execFile);

/** Plays vpcd's side: accepts the card, sends frames, collects reply frames. */
class FakeVpcd {
  readonly server = net.createServer();
  socket: net.Socket | undefined;
  private buffer = Buffer.alloc(0);
  private frames: Buffer[] = [];
  closedByCard = false;

  async listen(): Promise<number> {
    this.server.on('connection', (s) => {
      this.socket = s;
      s.on('data', (d) => {
        this.buffer = Buffer.concat([this.buffer, d]);
        while (this.buffer.length >= 2 && this.buffer.length >= 2 + this.buffer.readUInt16BE(0)) {
          const n = this.buffer.readUInt16BE(0);
          this.frames.push(this.buffer.subarray(2, 2 + n));
          this.buffer = this.buffer.subarray(2 + n);
        }
      });
      s.on('close', () => (this.closedByCard = true));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as net.AddressInfo).port;
  }

  send(payload: Uint8Array, split = false): void {
    const frame = Buffer.concat([Buffer.from([payload.length >> 8, payload.length & 0xff]), payload]);
    if (!split) this.socket!.write(frame);
    else for (const byte of frame) this.socket!.write(Buffer.from([byte])); // the bridge must reassemble
  }

  async reply(): Promise<Buffer> {
    return waitUntil(() => this.frames.shift(), 2000, 'a frame from the card');
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe('VpcdBridge wire protocol (fake vpcd)', () => {
  it('answers ATR requests, power and reset frames, and APDUs, including split and extended frames', async () => {
    const vpcd = new FakeVpcd();
    const port = await vpcd.listen();
    const icc = new EchoIcc({ name: 'WIRE' });
    const bridge = new VpcdBridge(icc, { port });
    const events: VpcdEvent['type'][] = [];
    bridge.on((e) => events.push(e.type));
    await bridge.connect();
    expect(bridge.connected).toBe(true);
    await waitUntil(() => vpcd.socket, 2000, 'the card to connect');

    vpcd.send(h('04'));
    expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
    vpcd.send(h('01'));
    vpcd.send(h('8030000002'));
    expect(hex(await vpcd.reply())).toBe('00009000');
    vpcd.send(h('8030000002'), true);
    expect(hex(await vpcd.reply())).toBe('00019000');
    vpcd.send(h('02')); // reset: no reply, volatile state gone
    vpcd.send(h('8030000002'));
    expect(hex(await vpcd.reply())).toBe('00009000');
    vpcd.send(h('80200000001000')); // extended Le 4096
    const long = await vpcd.reply();
    expect(long.length).toBe(4098);
    vpcd.send(h('00'));
    await waitUntil(() => events.filter((e) => e === 'power').length === 2, 2000, 'the power-off frame');

    await bridge.close();
    await waitUntil(() => vpcd.closedByCard, 2000, 'the card to leave');
    expect(bridge.connected).toBe(false);
    expect(events).toEqual(['inserted', 'power', 'apdu', 'apdu', 'reset', 'apdu', 'apdu', 'power', 'removed']);
    await vpcd.close();
  });

  it('rejects connect() when nobody listens, and reconnects when asked to', async () => {
    const vpcd = new FakeVpcd();
    const port = await vpcd.listen();
    await vpcd.close(); // now the port is free and refuses
    await expect(new VpcdBridge(new EchoIcc(), { port }).connect()).rejects.toThrow(/ECONNREFUSED/);

    const bridge = new VpcdBridge(new EchoIcc(), { port, reconnect: { delayMs: 20, maxDelayMs: 50 } });
    const inserted = bridge.connect();
    const late = new FakeVpcd();
    // Same port again: the bridge keeps retrying until it is there.
    await new Promise<void>((r) => late.server.listen(port, '127.0.0.1', r));
    late.server.removeAllListeners('listening');
    const accepted = new Promise<net.Socket>((r) => late.server.once('connection', r));
    await inserted;
    const first = await accepted;
    // vpcd going away (pcscd restart) is followed by a new connection.
    const again = new Promise<net.Socket>((r) => late.server.once('connection', r));
    first.destroy();
    (await again).destroy();
    await bridge.close();
    await new Promise((r) => late.server.close(r));
  });
});

const stack = pcscStack();
if (!stack.ok) console.warn(`[skip] vpcd bridge tests on pcscd: ${stack.reason}`);

describe.skipIf(!stack.ok)('VpcdBridge on pcscd + vpcd', () => {
  let release: () => void = () => undefined;
  const cards: VpcdChild[] = [];

  beforeAll(async () => {
    release = await lockVpcd();
    cards.push(await startVpcdChild({ module: ECHO_MODULE, export: 'createEchoIcc', args: [{ name: 'CARD-A' }] }, { port: 35963 }));
    cards.push(await startVpcdChild({ module: ECHO_MODULE, export: 'createEchoIcc', args: [{ name: 'CARD-B' }] }, { port: 35964 }));
    await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
    await waitForCard(VPCD_READER_1, { timeoutMs: 5000 });
  });

  afterAll(async () => {
    await Promise.all(cards.map((c) => c.stop()));
    release();
  });

  it('serves two cards on two ports at once, each in its own reader', async () => {
    const a = new PcscTransport({ reader: VPCD_READER_0 });
    const b = new PcscTransport({ reader: VPCD_READER_1 });
    try {
      expect(hex(await a.connect())).toBe(hex(cards[0]!.atr));
      expect(hex(await b.connect())).toBe(hex(cards[1]!.atr));
      expect(hex(cards[0]!.atr)).not.toBe(hex(cards[1]!.atr));
      // Volatile counters are per card: interleaved exchanges do not mix.
      await a.transmit(h('8030000002'));
      await a.transmit(h('8030000002'));
      expect(hex(await b.transmit(h('8030000002')))).toBe('00009000');
      expect(hex(await a.transmit(h('8030000002')))).toBe('00029000');
    } finally {
      await a.disconnect();
      await b.disconnect();
    }
  });

  it('opensc-tool talks to the virtual card', async () => {
    const { stdout } = await run('opensc-tool', ['-r', VPCD_READER_0, '-s', '00A4040008F0455449434B4554', '-s', '8010000003AABBCC'], {
      timeout: 20_000,
    });
    expect(stdout).toMatch(/Received \(SW1=0x90, SW2=0x00\)/);
    expect(stdout).toMatch(/AA BB CC/);
  });

  it('opensc-tool reads the ATR pcscd got from the card', async () => {
    const { stdout } = await run('opensc-tool', ['-r', VPCD_READER_1, '-a'], { timeout: 20_000 });
    expect(stdout.trim().replace(/:/g, '').toUpperCase()).toBe(hex(cards[1]!.atr));
  });

  it('scriptor (pcsc-tools) talks to the virtual card', async () => {
    const child = execFile('scriptor', ['-r', VPCD_READER_1], { timeout: 20_000 });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stdin!.end('00 A4 04 00 05 A0 00 00 00 01\n80 10 00 00 02 12 34\n');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(out).toMatch(/< 6A 82/);
    expect(out).toMatch(/< 12 34 90 00/);
  });

  it('a clean stop takes the card out of the reader', async () => {
    const extra = new PcscTransport({ reader: VPCD_READER_1 });
    const events: string[] = [];
    const off = extra.onCardEvent((e) => events.push(e.type));
    try {
      await waitUntil(() => events.includes('inserted'), 3000, 'the initial inserted event');
      await cards[1]!.stop();
      await waitUntil(() => events.includes('removed'), 3000, 'a removed event');
      await expect(extra.connect()).rejects.toThrow(/no card/);
    } finally {
      off();
      await extra.disconnect();
    }
  });
});
