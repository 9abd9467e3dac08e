// PcscTransport against the real stack: pcsclite → pcscd → vpcd → VpcdBridge (child process) → EchoIcc.
// Skipped with a printed reason where pcscd/vpcd or the binding are missing; .ci/run starts them (ETICKET_PCSC=1).

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startVpcdChild, type VpcdChild } from '../../card/vpcd-child.ts';
import {
  CardRemovedError,
  ReaderNotFoundError,
  TransportError,
  TransportTimeoutError,
  TransportUnavailableError,
} from '../../sdk/errors.ts';
import { INS } from '../../test/helpers/echo-icc.ts';
import { lockVpcd, pcscStack, pullCard, VPCD_READER_0, VPCD_READER_1, waitUntil, VPCD_LOCK_HOOK_MS } from '../../test/helpers/pcsc-stack.ts';
import { listReaders, matchReader, pcscAgentPids, PcscTransport, pcscErrorCode, waitForCard, waitForRemoval } from './pcsc.ts';
import { RecordingTransport } from './recording.ts';
import { ReplayTransport } from './replay.ts';

const ECHO_MODULE = fileURLToPath(new URL('../../test/helpers/echo-icc.ts', import.meta.url));
const h = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
const SELECT_ECHO = h('00A4040008F0455449434B4554');

/** Whether npm pcsclite is built here (the agent loads it; the no-stack tests need nothing else). */
const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const bindingBuilt = (() => {
  try {
    createRequire(import.meta.url)('pcsclite');
    return true;
  } catch {
    return false;
  }
})();

describe('PC/SC helpers (no stack needed)', () => {
  it('matches readers exactly or by a unique substring', () => {
    const names = ['Virtual PCD 00 00', 'Virtual PCD 00 01', 'ACME CCID 00 00'];
    expect(matchReader(names, 'Virtual PCD 00 01')).toBe('Virtual PCD 00 01');
    expect(matchReader(names, 'ACME')).toBe('ACME CCID 00 00');
    expect(() => matchReader(names, 'Virtual')).toThrow(/matches several/);
    expect(() => matchReader(names, 'Nope')).toThrow(ReaderNotFoundError);
    expect(matchReader(['X 00', 'X 00 01'], 'X 00')).toBe('X 00');
  });

  it('reads the PC/SC code out of pcsclite messages', () => {
    expect(pcscErrorCode(new Error('SCardTransmit error: Card was removed.(0x80100069)'))).toBe(0x80100069);
    expect(pcscErrorCode(new Error('Card Reader not connected'))).toBeUndefined();
  });

  it.skipIf(!bindingBuilt)('reports a PC/SC service that is not there as TransportUnavailableError', async () => {
    // libpcsclite's own variable: the agent looks for pcscd's socket where there is none.
    const t = new PcscTransport({ agent: { env: { PCSCLITE_CSOCK_NAME: join(tmpdir(), `no-pcscd-${process.pid}.comm`) } } });
    const error = await t.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as Error).message).toMatch(/PC\/SC service unavailable .*is pcscd running/);
    await t.disconnect();
  });

  it.skipIf(!bindingBuilt)('a pcscd that accepts and never answers gives TransportTimeoutError, the event loop runs meanwhile, and the stuck agent is killed', async () => {
    // A socket that takes the connection and says nothing: SCardEstablishContext blocks in it for ever,
    // as it does on a pcscd frozen by a card. The call runs in the agent process, never in this one.
    const path = join(tmpdir(), `mute-pcscd-${process.pid}.comm`);
    const server = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const agent = { env: { PCSCLITE_CSOCK_NAME: path } };
    let settled = false;
    let ticksWhilePending = 0;
    const ticker = setInterval(() => {
      if (!settled) ticksWhilePending++;
    }, 10);
    try {
      const before = new Set(pcscAgentPids());
      const t = new PcscTransport({ reader: 'Virtual PCD 00 00', readerListTimeoutMs: 800, agent });
      const pending = t.connect().catch((e: unknown) => e);
      const fresh = (): number[] => pcscAgentPids().filter((pid) => !before.has(pid));
      const stuckAgents = await waitUntil(() => fresh().length > 0 && fresh(), 5000, 'the agent to start');
      const error = await pending;
      settled = true;
      expect(error).toBeInstanceOf(TransportTimeoutError);
      expect((error as Error).message).toMatch(/did not list its readers within 800 ms/);
      expect(ticksWhilePending).toBeGreaterThan(0);
      await t.disconnect();
      // The agent was blocked in native code: only a kill ends it, and it must not outlive the transport.
      for (const pid of stuckAgents) await waitUntil(() => !processAlive(pid), 5000, `agent ${pid} to be killed`);
      // listReaders and waitForCard keep the same bound.
      await expect(listReaders({ timeoutMs: 500, agent })).rejects.toBeInstanceOf(TransportTimeoutError);
      await expect(waitForCard('Virtual PCD 00 00', { timeoutMs: 500, agent })).rejects.toBeInstanceOf(TransportTimeoutError);
      await waitUntil(() => fresh().length === 0, 5000, 'every agent stuck on the mute pcscd to be gone');
    } finally {
      clearInterval(ticker);
      server.close();
    }
  });

  it.skipIf(!bindingBuilt || !existsSync('/proc/self/environ'))('the agent process gets no ETICKET_ variable: no office, gate or client passphrase, no database URL', async () => {
    // A mute pcscd keeps the agent alive (blocked in SCardEstablishContext) while its environment is read.
    const path = join(tmpdir(), `mute-pcscd-env-${process.pid}.comm`);
    const server = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const planted: Record<string, string> = {
      ETICKET_PASSPHRASE: 'office secret',
      ETICKET_GATE_PASSPHRASE: 'gate secret',
      ETICKET_CLIENT_PASSPHRASE: 'client secret',
      ETICKET_DATABASE_URL: 'postgres://u:secret@localhost/eticket',
    };
    const saved = Object.fromEntries(Object.keys(planted).map((k) => [k, process.env[k]]));
    Object.assign(process.env, planted);
    try {
      const before = new Set(pcscAgentPids());
      const t = new PcscTransport({ readerListTimeoutMs: 3000, agent: { env: { PCSCLITE_CSOCK_NAME: path } } });
      const pending = t.connect().catch((e: unknown) => e);
      const fresh = await waitUntil(() => {
        const pids = pcscAgentPids().filter((pid) => !before.has(pid));
        return pids.length > 0 && pids;
      }, 5000, 'the agent to start');
      const environ = readFileSync(`/proc/${fresh[0]}/environ`, 'latin1').split('\0');
      expect(environ).toContain(`PCSCLITE_CSOCK_NAME=${path}`);
      expect(environ.filter((v) => v.startsWith('ETICKET_'))).toEqual([]);
      expect(environ.filter((v) => v.includes('secret'))).toEqual([]);
      expect(await pending).toBeInstanceOf(TransportTimeoutError);
      await t.disconnect();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      server.close();
    }
  });

  it.skipIf(!bindingBuilt)('an agent blocked in native code does not outlive a parent killed by SIGKILL', async () => {
    // The mute pcscd lives here, so the agent stays blocked after its parent dies: only its own watcher thread
    // can notice (its main thread, stuck in SCardEstablishContext, never hears the IPC channel close).
    const path = join(tmpdir(), `mute-pcscd-orphan-${process.pid}.comm`);
    const server = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const parent = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../test/helpers/pcsc-doomed-parent.ts', import.meta.url)), path], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      parent.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      const signal = await new Promise<NodeJS.Signals | null>((resolve) => parent.on('exit', (_code, sig) => resolve(sig)));
      expect(signal).toBe('SIGKILL');
      const agents = out.trim().split(',').map(Number);
      expect(agents.length).toBeGreaterThan(0);
      for (const pid of agents) await waitUntil(() => !processAlive(pid), 10_000, `orphaned agent ${pid} to end`);
    } finally {
      server.close();
    }
  }, 90_000);

  it.skipIf(!bindingBuilt)('defaults to extended length and a 64 KiB response buffer, short-only on request', () => {
    expect(new PcscTransport().info).toMatchObject({ extendedLength: true, maxResponse: 65538 });
    expect(new PcscTransport({ extendedLength: false }).info).toMatchObject({ extendedLength: false, maxResponse: 258 });
  });
});

const stack = pcscStack();
if (!stack.ok) console.warn(`[skip] PC/SC transport tests: ${stack.reason}`);

describe.skipIf(!stack.ok)('PcscTransport over pcscd + vpcd', () => {
  let release: () => void = () => undefined;
  let card: VpcdChild | undefined;
  const open: PcscTransport[] = [];

  const startCard = async (name = 'PCSC', port = 35963): Promise<VpcdChild> =>
    startVpcdChild({ module: ECHO_MODULE, export: 'createEchoIcc', args: [{ name }] }, { port });

  const transport = (options: ConstructorParameters<typeof PcscTransport>[0] = {}): PcscTransport => {
    const t = new PcscTransport({ reader: '00 00', ...options });
    open.push(t);
    return t;
  };

  beforeAll(async () => {
    release = await lockVpcd();
    card = await startCard();
    await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
  }, VPCD_LOCK_HOOK_MS);

  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.disconnect().catch(() => undefined)));
  });

  afterAll(async () => {
    await pullCard(card);
    release();
  });

  /** Some tests pull the card: put a fresh one back and wait until pcscd sees it. */
  const ensureCard = async (): Promise<void> => {
    if (card?.running) return;
    // The pulled card must be out as pcscd sees it before the next goes in.
    await waitForRemoval(VPCD_READER_0, { timeoutMs: 10_000 });
    card = await startCard();
    await waitForCard(VPCD_READER_0, { timeoutMs: 5000 });
  };

  it('lists both vpcd readers and the card in the first', async () => {
    // A bound, not a speed claim: settle() returns as soon as every reader has reported; on a loaded machine
    // the agent process and pcscd's first status can take longer than the 3 s default.
    const readers = await listReaders({ timeoutMs: 60_000 });
    const names = readers.map((r) => r.name);
    expect(names).toContain(VPCD_READER_0);
    expect(names).toContain(VPCD_READER_1);
    const first = readers.find((r) => r.name === VPCD_READER_0)!;
    expect(first.cardPresent).toBe(true);
    expect(hex(first.atr!)).toBe(hex(card!.atr));
  });

  it('contexts opened and closed one after another are released in pcscd: 250 lists later, the agent holds a bounded number of descriptors and pcscd still lists', async () => {
    const descriptors = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
    await listReaders({ timeoutMs: 60_000 });
    const [pid] = pcscAgentPids();
    expect(pid).toBeDefined();
    const before = descriptors(pid!);
    // pcscd serves at most 200 client threads (one per context): without the release, this loop exhausts them.
    for (let i = 0; i < 250; i++) await listReaders({ timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 200)); // the agent collects 20 ms after a close
    expect(pcscAgentPids()).toContain(pid);
    expect(descriptors(pid!) - before).toBeLessThan(20);
    expect((await listReaders({ timeoutMs: 60_000 })).map((r) => r.name)).toContain(VPCD_READER_0);
  }, 300_000);

  it('connects with T=1, reports the Icc ATR and the reader by its full name', async () => {
    await ensureCard();
    const t = transport();
    const atr = await t.connect();
    expect(hex(atr)).toBe(hex(card!.atr));
    expect(t.protocol).toBe('T=1');
    expect(t.info).toEqual({ reader: VPCD_READER_0, extendedLength: true, maxResponse: 65538 });
    expect(hex(await t.connect())).toBe(hex(atr)); // idempotent
  });

  it('transmits: SELECT of its AID succeeds, other AIDs get 6A82', async () => {
    await ensureCard();
    const t = transport({ protocol: 'T=1', shareMode: 'exclusive' });
    await t.connect();
    expect(hex(await t.transmit(SELECT_ECHO))).toBe('9000');
    expect(hex(await t.transmit(h('00A4040005A000000001')))).toBe('6A82');
    expect(hex(await t.transmit(h('8010000003010203')))).toBe('0102039000');
  });

  it('passes an extended-length command and a response longer than 256 bytes through pcscd', async () => {
    await ensureCard();
    const t = transport();
    await t.connect();
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
    const command = Uint8Array.from([0x80, INS.ECHO, 0, 0, 0x00, 0x03, 0xe8, ...data, 0x00, 0x00]);
    const echoed = await t.transmit(command);
    expect(echoed.length).toBe(1002);
    expect(hex(echoed.subarray(0, 1000))).toBe(hex(data));
    const long = await t.transmit(h('80200000000BB8')); // extended Le = 3000
    expect(long.length).toBe(3002);
    expect(long[300]).toBe(300 & 0xff);
    expect(hex(long.subarray(3000))).toBe('9000');
  });

  it('reset() clears the volatile state of the card', async () => {
    await ensureCard();
    const t = transport();
    await t.connect();
    await t.transmit(h('8030000002'));
    expect(hex(await t.transmit(h('8030000002')))).toBe('00019000');
    expect(hex(await t.reset())).toBe(hex(card!.atr));
    expect(hex(await t.transmit(h('8030000002')))).toBe('00009000');
  });

  it('records a PC/SC session that then replays without the card', async () => {
    await ensureCard();
    const rec = new RecordingTransport(transport());
    await rec.connect();
    await rec.transmit(SELECT_ECHO);
    await rec.transmit(h('8010000002CAFE'));
    expect(rec.text).toContain(`# Using ${VPCD_READER_0}\n# ATR: ${hex(card!.atr)}\n# PROTOCOL: T=1\n`);
    const replay = new ReplayTransport(rec.text);
    await replay.connect();
    expect(hex(await replay.transmit(SELECT_ECHO))).toBe('9000');
    expect(hex(await replay.transmit(h('8010000002CAFE')))).toBe('CAFE9000');
  });

  it('refuses unknown and ambiguous reader names', async () => {
    await expect(transport({ reader: 'No Such Reader' }).connect()).rejects.toBeInstanceOf(ReaderNotFoundError);
    await expect(transport({ reader: 'Virtual PCD' }).connect()).rejects.toThrow(/matches several/);
  });

  it('waitForCard times out on an empty reader with TransportTimeoutError', async () => {
    const started = Date.now();
    await expect(waitForCard(VPCD_READER_1, { timeoutMs: 300 })).rejects.toBeInstanceOf(TransportTimeoutError);
    expect(Date.now() - started).toBeLessThan(3000);
    await expect(transport({ reader: VPCD_READER_1 }).waitForCard(300)).rejects.toBeInstanceOf(TransportTimeoutError);
  });

  it('waitForRemoval: at once on an empty reader, TransportTimeoutError naming the reader while a card stays, and resolved when it leaves', async () => {
    await waitForRemoval(VPCD_READER_1, { timeoutMs: 5000 });
    await ensureCard();
    const stay = waitForRemoval(VPCD_READER_0, { timeoutMs: 600 });
    await expect(stay).rejects.toBeInstanceOf(TransportTimeoutError);
    await expect(stay).rejects.toThrow(/a card still in "Virtual PCD 00 00" after 600 ms/);
    const leaving = waitForRemoval('00 00', { timeoutMs: 10_000 });
    await card!.stop();
    await leaving;
    expect((await listReaders()).find((r) => r.name === VPCD_READER_0)?.cardPresent).toBe(false);
  });

  it('waitForRemoval with the card still in and its PC/SC agent killed: TransportUnavailableError, never "removed"', async () => {
    await ensureCard();
    // An agent of its own (its own environment), so no other transport of this file loses its agent.
    const agent = { env: { ETICKET_TEST_AGENT: 'removal-agent-death' } };
    const before = new Set(pcscAgentPids());
    const waiting = waitForRemoval(VPCD_READER_0, { timeoutMs: 10_000, agent }).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    const fresh = await waitUntil(() => {
      const started = pcscAgentPids().filter((pid) => !before.has(pid));
      return started.length > 0 && started;
    }, 5000, 'the agent to start');
    await new Promise((r) => setTimeout(r, 300)); // let it report the card first: the wait is under way, not starting
    for (const pid of fresh) process.kill(pid, 'SIGKILL');
    const outcome = await waiting;
    expect(outcome).toBeInstanceOf(TransportUnavailableError);
    expect((outcome as Error).message).toMatch(/PC\/SC agent gone while waiting for "Virtual PCD 00 00" to empty/);
    expect(card!.running).toBe(true);
    expect((await listReaders()).find((r) => r.name === VPCD_READER_0)?.cardPresent).toBe(true);
  });

  it('a card that answers too slowly gives TransportTimeoutError, not a hang', async () => {
    await ensureCard();
    const t = transport({ timeoutMs: 300 });
    await t.connect();
    const started = Date.now();
    await expect(t.transmit(h('805005DC'))).rejects.toBeInstanceOf(TransportTimeoutError); // card busy 1.5 s
    expect(Date.now() - started).toBeLessThan(1200);
    await expect(t.transmit(SELECT_ECHO)).rejects.toThrow(/unusable after a timeout/);
    // A new connection works once the card has finished its slow command.
    const again = transport();
    await again.connect();
    expect(hex(await again.transmit(SELECT_ECHO))).toBe('9000');
  });

  it('a card pulled mid-transaction raises CardRemovedError within the bound, and events report it', async () => {
    await ensureCard();
    const t = transport({ timeoutMs: 8000, removalTimeoutMs: 1500 });
    const events: string[] = [];
    const off = t.onCardEvent((e) => events.push(e.type));
    await t.connect();
    expect(hex(await t.transmit(SELECT_ECHO))).toBe('9000');
    const pending = t.transmit(h('80501388')).catch((e: unknown) => e); // card busy 5 s
    await new Promise((r) => setTimeout(r, 150));
    const pulledAt = Date.now();
    await card!.kill();
    const error = await pending;
    const took = Date.now() - pulledAt;
    expect(error).toBeInstanceOf(CardRemovedError);
    expect((error as CardRemovedError).reader).toBe(VPCD_READER_0);
    expect(took).toBeLessThan(3000);
    await expect(t.transmit(SELECT_ECHO)).rejects.toBeInstanceOf(CardRemovedError);
    await waitUntil(() => events.includes('removed'), 3000, 'a removed event');

    // Inserting a card again is reported, and connect() starts afresh on it.
    card = await startCard();
    await waitUntil(() => events.lastIndexOf('inserted') > events.indexOf('removed'), 5000, 'an inserted event');
    await t.connect();
    expect(hex(await t.transmit(SELECT_ECHO))).toBe('9000');
    off();
  });

  it('connect() with no card in the reader is a typed error', async () => {
    const t = transport({ reader: VPCD_READER_1 });
    const error = await t.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toBeInstanceOf(CardRemovedError);
  });
});
