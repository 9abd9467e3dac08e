// The vpcd bridge: its wire protocol against a fake vpcd (always runs), then real pcscd + vpcd with two cards
// at once and stock PC/SC tools (opensc-tool, scriptor) talking to the virtual card (skipped without the stack).

import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.ts';
import { EchoIcc, INS } from '../test/helpers/echo-icc.ts';
import { lockVpcd, pcscStack, pullCard, VPCD_READER_0, VPCD_READER_1, waitUntil, VPCD_LOCK_HOOK_MS } from '../test/helpers/pcsc-stack.ts';
import { startVpcdChild, type VpcdChild } from './vpcd-child.ts';
import { VpcdBridge, type VpcdEvent, type VpcdTiming } from './vpcd.ts';

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
  connections = 0;

  async listen(): Promise<number> {
    this.server.on('connection', (s) => {
      this.socket = s;
      this.connections++;
      this.buffer = Buffer.alloc(0);
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

  /** Frames the card sent that nobody has read yet (a reply nobody asked for would show up here). */
  get unread(): number {
    return this.frames.length;
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
    // Connected is not yet polled: vpcd has not talked to the card (pcscd may still report the previous one).
    expect(bridge.polled).toBe(false);

    vpcd.send(h('04'));
    expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
    expect(bridge.polled).toBe(true);
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
    vpcd.send(h('04')); // pcscd's next poll: it proves the 00 was power off, not a 1-byte APDU
    expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
    await waitUntil(() => events.filter((e) => e === 'power').length === 2, 2000, 'the power-off frame');
    expect(vpcd.unread).toBe(0);

    await bridge.close();
    await waitUntil(() => vpcd.closedByCard, 2000, 'the card to leave');
    expect(bridge.connected).toBe(false);
    expect(bridge.polled).toBe(false);
    // 'polled' once, on vpcd's first frame, not on the TCP connect.
    expect(events).toEqual(['inserted', 'polled', 'power', 'apdu', 'apdu', 'reset', 'apdu', 'apdu', 'power', 'removed']);
    await vpcd.close();
  });

  /** A bridge on a fake vpcd with short timings, and a way to tear both down. */
  const rig = async (timing: VpcdTiming = { ambiguousFrameMs: 150, silenceMs: 0 }) => {
    const vpcd = new FakeVpcd();
    const port = await vpcd.listen();
    const icc = new EchoIcc({ name: 'SHORT' });
    const bridge = new VpcdBridge(icc, { port, timing });
    const events: VpcdEvent[] = [];
    bridge.on((e) => events.push(e));
    await bridge.connect();
    await waitUntil(() => vpcd.socket, 2000, 'the card to connect');
    return {
      vpcd,
      icc,
      bridge,
      events,
      done: async () => {
        await bridge.close();
        await vpcd.close();
      },
    };
  };

  it('answers every 1-byte frame that is no control code with the card answer 6700, and 04 with the ATR', async () => {
    const { vpcd, icc, done } = await rig();
    try {
      for (let v = 0; v < 256; v++) {
        if (v <= 2) continue; // the ambiguous three: next test
        vpcd.send(Uint8Array.of(v));
        expect(hex(await vpcd.reply()), `frame ${v.toString(16)}`).toBe(v === 4 ? hex(icc.atr()) : '6700');
      }
      expect(vpcd.unread).toBe(0);
    } finally {
      await done();
    }
  });

  it('takes 00/01/02 for power off/on/reset when another frame follows, for a 1-byte APDU (6700, card untouched) when none does', async () => {
    const { vpcd, icc, events, done } = await rig();
    try {
      for (const v of [0x00, 0x01, 0x02]) {
        // As a control code: the driver follows with 04 (power on, reset) or its next poll (power off).
        vpcd.send(h('8030000002')); // counter 0 → 1
        expect(hex(await vpcd.reply())).toBe('00009000');
        vpcd.send(Uint8Array.of(v));
        vpcd.send(h('04'));
        expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
        vpcd.send(h('8030000002'));
        expect(hex(await vpcd.reply()), 'the control code cleared the volatile counter').toBe('00009000');

        // As an APDU: the driver waits for its answer and sends nothing else; the card is not reset by it.
        vpcd.send(h('8030000002')); // counter 1 → 2
        expect(hex(await vpcd.reply())).toBe('00019000');
        vpcd.send(Uint8Array.of(v));
        expect(hex(await vpcd.reply())).toBe('6700');
        vpcd.send(h('8030000002'));
        expect(hex(await vpcd.reply()), 'a 1-byte APDU must not power off or reset the card').toBe('00029000');
        vpcd.send(h('02'));
        vpcd.send(h('04'));
        expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
      }
      expect(vpcd.unread).toBe(0);
      const kinds = events.filter((e) => e.type === 'power' || e.type === 'reset').map((e) => (e.type === 'power' ? `power ${e.on ? 'on' : 'off'}` : 'reset'));
      expect(kinds).toEqual(['power off', 'reset', 'power on', 'reset', 'reset', 'reset']);
    } finally {
      await done();
    }
  });

  it('answers an empty frame (vpcd never sends one) with 6700 rather than silence', async () => {
    const { vpcd, done } = await rig();
    try {
      vpcd.send(new Uint8Array(0));
      expect(hex(await vpcd.reply())).toBe('6700');
    } finally {
      await done();
    }
  });

  it('stays in step with a driver that mixes polls, control codes and APDUs of every short length (property)', async () => {
    type Op = { kind: 'poll' } | { kind: 'control'; code: 0 | 1 | 2; followMs: number } | { kind: 'apdu'; bytes: Uint8Array };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant<Op>({ kind: 'poll' }),
      fc.record({ kind: fc.constant('control' as const), code: fc.constantFrom(0 as const, 1 as const, 2 as const), followMs: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant('apdu' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
      fc.constant<Op>({ kind: 'apdu', bytes: h('8030000002') }),
    );
    const { vpcd, icc, done } = await rig({ ambiguousFrameMs: 120, silenceMs: 0 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 12 }), async (ops) => {
          // The model card sees what a correct bridge passes on: control codes applied, APDUs answered.
          const model = new EchoIcc({ name: 'SHORT' });
          vpcd.send(h('02')); // each run starts from a reset card, as the model does
          vpcd.send(h('04'));
          expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
          for (const o of ops) {
            if (o.kind === 'poll') {
              vpcd.send(h('04'));
              expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
            } else if (o.kind === 'control') {
              vpcd.send(Uint8Array.of(o.code));
              [() => model.powerOff(), () => model.powerOn(), () => model.reset()][o.code]!();
              // Power on and reset ask for the ATR at once; power off waits for the next poll.
              await new Promise((r) => setTimeout(r, o.followMs));
              vpcd.send(h('04'));
              expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
            } else {
              vpcd.send(o.bytes);
              const expected = o.bytes.length === 1 && o.bytes[0] === 4 ? icc.atr() : model.transmit(o.bytes);
              expect(hex(await vpcd.reply()), `APDU ${hex(o.bytes)}`).toBe(hex(expected));
            }
          }
          expect(vpcd.unread).toBe(0);
        }),
        { numRuns: 25 },
      );
    } finally {
      await done();
    }
  }, 60_000);

  it('re-inserts the card when the driver goes silent while nothing is owed (it waits on an empty APDU)', async () => {
    const { vpcd, icc, events, done } = await rig({ ambiguousFrameMs: 100, silenceMs: 300, reinsertDelayMs: 100 });
    try {
      vpcd.send(h('04'));
      expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
      // No poll, no request: what vpcd's driver does while blocked on the reply to an empty APDU.
      await waitUntil(() => vpcd.connections === 2, 3000, 'the card to come back on a new connection');
      expect(vpcd.closedByCard).toBe(true);
      const types = events.map((e) => e.type);
      expect(types).toEqual(['inserted', 'polled', 'resync', 'inserted']);
      vpcd.send(h('04'));
      expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
      // A new connection is polled anew.
      expect(events.map((e) => e.type).slice(4)).toEqual(['polled']);
    } finally {
      await done();
    }
  });

  it('does not re-insert a card that pcscd keeps polling, nor one still timing an ambiguous frame', async () => {
    const { vpcd, icc, events, done } = await rig({ ambiguousFrameMs: 500, silenceMs: 200, reinsertDelayMs: 100 });
    try {
      for (let i = 0; i < 12; i++) {
        vpcd.send(h('04'));
        expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
        await new Promise((r) => setTimeout(r, 50));
      }
      // A 1-byte APDU 02 keeps the bridge busy longer than silenceMs: that is not silence.
      vpcd.send(h('02'));
      expect(hex(await vpcd.reply())).toBe('6700');
      expect(events.some((e) => e.type === 'resync')).toBe(false);
      expect(vpcd.connections).toBe(1);
    } finally {
      await done();
    }
  });

  it('does not re-insert a card that computed longer than silenceMs: silence counts from its answer, and a poll already waiting is read first', async () => {
    const { vpcd, icc, events, done } = await rig({ ambiguousFrameMs: 100, silenceMs: 200, reinsertDelayMs: 100 });
    try {
      vpcd.send(h('04'));
      expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
      // A command that keeps the card's thread busy for 3 × silenceMs (an SM9 operation on a loaded machine), with
      // pcscd's next poll queued behind it: the watchdog's timer is overdue when the card answers.
      vpcd.send(h('80500258'));
      vpcd.send(h('04'));
      expect(hex(await vpcd.reply())).toBe('9000');
      expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 100));
        vpcd.send(h('04'));
        expect(hex(await vpcd.reply())).toBe(hex(icc.atr()));
      }
      expect(events.filter((e) => e.type === 'resync')).toEqual([]);
      expect(vpcd.connections).toBe(1);
    } finally {
      await done();
    }
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
  }, VPCD_LOCK_HOOK_MS);

  afterAll(async () => {
    await Promise.all(cards.map((c) => pullCard(c)));
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

  it('a card started the moment another stopped is the one the next connect and transmit reach (no 0x80100016 on the old socket)', async () => {
    // Without pullCard (wait until pcscd reports the reader empty) and startVpcdChild waiting for vpcd's first poll,
    // every other swap failed: the new card's TCP connect sat in vpcd's backlog while pcscd still reported the old
    // card, and the first transmit went to the old card's socket.
    let card = cards[0]!;
    try {
      for (let swap = 0; swap < 8; swap++) {
        await pullCard(card);
        card = await startVpcdChild({ module: ECHO_MODULE, export: 'createEchoIcc', args: [{ name: `SWAP-${swap}` }] }, { port: 35963 });
        await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
        const t = new PcscTransport({ reader: VPCD_READER_0 });
        try {
          expect(hex(await t.connect()), `swap ${swap}: the ATR is the new card's`).toBe(hex(card.atr));
          expect(hex(await t.transmit(h('8030000002'))), `swap ${swap}`).toBe('00009000');
        } finally {
          await t.disconnect();
        }
      }
    } finally {
      cards[0] = card;
    }
  });

  it('a clean stop takes the card out of the reader', async () => {
    const extra = new PcscTransport({ reader: VPCD_READER_1 });
    const events: string[] = [];
    const off = extra.onCardEvent((e) => events.push(e.type));
    try {
      // Bounds for a loaded machine: the first event waits for a fresh PC/SC agent and pcscd's first list.
      await waitUntil(() => events.includes('inserted'), 10_000, 'the initial inserted event');
      await cards[1]!.stop();
      await waitUntil(() => events.includes('removed'), 10_000, 'a removed event');
      await expect(extra.connect()).rejects.toThrow(/no card/);
    } finally {
      off();
      await extra.disconnect();
    }
  });
});
