// APDU round-trip and gate-transaction cost through the whole PC/SC stack (pcsclite → pcscd → vpcd → bridge in
// a child process) versus the same card in process; the harness in bench/ decides when to run them and how to print.

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Icc } from '../sdk/icc.js';
import { startVpcdChild, type IccFactorySpec, type VpcdChild } from '../card/vpcd-child.js';
import type { GateMode } from '../host/checking.js';
import { World } from '../testing/world.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.js';
import { openBenchCardImage } from './card-factory.js';
import { GateRig } from './gate-rig.js';
import type { SuiteName } from '../sdk/spec.js';
import { lockVpcd, pullCard } from '../testing/vpcd-lock.js';
import { latency, timeCalls, type Latency } from './stats.js';


export interface PcscBenchOptions {
  /** vpcd port the card is put on; its reader must be empty. Default 35963 ("Virtual PCD 00 00"). */
  port?: number;
  /** Reader to connect to; default derived from the port. */
  reader?: string;
  /** Hex command APDU; default a SELECT of an absent AID (6A82 on any ISO 7816-4 card: cheap, no state). */
  apdu?: string;
  /** Untimed round trips first (JIT, pcscd's caches). Default 50. */
  warmup?: number;
}


/**
 * One short APDU, `iterations` times, in process and over PC/SC. Needs pcscd running with vpcd; the
 * sub-millisecond figure needs pcscd started with the TCP_NODELAY preload (tools/pcscd-start.sh), else
 * Nagle on vpcd's two writes costs ~44 ms per APDU.
 */
export async function benchPcscRoundTrip(
  spec: IccFactorySpec,
  iterations: number,
  options: PcscBenchOptions = {},
): Promise<{ inProcess: Latency; pcsc: Latency }> {
  const command = Uint8Array.from(Buffer.from(options.apdu ?? '00A4040005A000000000', 'hex'));
  const warmup = options.warmup ?? 50;
  const port = options.port ?? 35963;
  const reader = options.reader ?? `Virtual PCD 00 ${String(port - 35963).padStart(2, '0')}`;

  const moduleUrl = spec.module instanceof URL ? spec.module.href : spec.module.startsWith('file:') ? spec.module : pathToFileURL(spec.module).href;
  const mod = (await import(moduleUrl)) as Record<string, (...args: unknown[]) => Icc | Promise<Icc>>;
  const icc = await mod[spec.export]!(...(spec.args ?? []));
  icc.powerOn();
  for (let i = 0; i < warmup; i++) icc.transmit(command);
  const inProcess = latency(await timeCalls(iterations, () => icc.transmit(command)));

  const card = await startVpcdChild(spec, { port });
  const transport = new PcscTransport({ reader });
  try {
    await waitForCard(reader, { timeoutMs: 10_000 });
    await transport.connect();
    for (let i = 0; i < warmup; i++) await transport.transmit(command);
    const pcsc = latency(await timeCalls(iterations, () => transport.transmit(command)));
    return { inProcess, pcsc };
  } finally {
    await transport.disconnect().catch(() => undefined);
    await pullCard(card);
  }
}

export interface GateBenchOptions {
  /** Crypto suite of the card and the back office. Default 'rsa'. */
  suite?: SuiteName;
  /** Gate mode: 'pki' (keys 4/5 are the suite's asymmetric keys, the default) or 'sym' (diversified AES key). */
  mode?: GateMode;
  /** Timed gate transactions on each side (in process, PC/SC). Default 200. */
  iterations?: number;
  /** Untimed gate transactions first on each side. Default 10. */
  warmup?: number;
  /** Timed short-APDU round trips on each side, on the same card in the same run. Default 1000. */
  roundTripIterations?: number;
  /** vpcd port the card is put on; its reader must be empty. Default 35963 ("Virtual PCD 00 00"). */
  port?: number;
  /** Reader to connect to; default derived from the port. */
  reader?: string;
  /** Session mode on both sides: extended length (default true) or short APDUs with chaining and GET RESPONSE. */
  extendedLength?: boolean;
  /**
   * fsync every NVM write, as the card's default image does. Default false: a disk flush costs several ms and
   * varies with the machine, burying the stack's cost; the journal protocol and write pattern stay the same.
   */
  durableNvm?: boolean;
  /**
   * Take the cross-process vpcd lock the PC/SC test files use ($TMPDIR/eticket-vpcd.lock), so a bench run and
   * `npm test` never put two cards on one port. Default true.
   */
  lock?: boolean;
}

export interface GateBenchResult {
  suite: SuiteName;
  mode: GateMode;
  reader: string;
  extendedLength: boolean;
  durableNvm: boolean;
  iterations: number;
  /** One gate transaction: CheckingTerminal.passGate = SELECT, VERIFY, WRITE USAGE (receipt checked). */
  gate: { inProcess: Latency; pcsc: Latency };
  /** APDUs and bytes (both directions) per gate transaction, from the PC/SC session's counters. */
  apdusPerGate: number;
  bytesPerGate: number;
  /**
   * One short APDU (SELECT of an absent AID, 6A82) on the same card: in process; through PcscTransport (its
   * PC/SC agent process, then pcscd); and through npm pcsclite loaded in this process (what PcscTransport did
   * before the agent, and still the floor): `pcsc - pcscDirect` is what the agent's IPC hop costs.
   */
  roundTrip: { inProcess: Latency; pcsc: Latency; pcscDirect: Latency };
}

/** The binding in this process, on a shared connection to `reader`: the bench's yardstick, not for the SDK. */
async function directPcsc(reader: string): Promise<{ transmit(c: Uint8Array): Promise<Uint8Array>; close(): Promise<void> }> {
  type Reader = import('node:events').EventEmitter & {
    name: string;
    connect(o: { share_mode: number; protocol: number }, cb: (e: unknown, p: number) => void): void;
    transmit(d: Buffer, n: number, p: number, cb: (e: unknown, r: Buffer) => void): void;
    disconnect(d: number, cb: (e: unknown) => void): void;
    close(): void;
  };
  const context = (createRequire(import.meta.url)('pcsclite') as () => import('node:events').EventEmitter & { close(): void })();
  context.on('error', () => undefined);
  // Every reader pcsclite reports watches its slot until closed, and keeps the process alive: vpcd has two (35963 and
  // 35964), and a bench that closed only the one it used never exited.
  const seen: Reader[] = [];
  const closeAll = () => {
    for (const r of seen) r.close();
    context.close();
  };
  const found = await new Promise<Reader>((resolve, reject) => {
    const timer = setTimeout(() => {
      closeAll();
      reject(new Error(`pcsclite did not report "${reader}"`));
    }, 5000);
    context.on('reader', (r: Reader) => {
      seen.push(r);
      r.on('error', () => undefined);
      if (r.name === reader) {
        clearTimeout(timer);
        resolve(r);
      }
    });
  });
  let protocol: number;
  try {
    protocol = await new Promise<number>((resolve, reject) => found.connect({ share_mode: 2, protocol: 3 }, (e, p) => (e ? reject(e) : resolve(p))));
  } catch (e) {
    closeAll();
    throw e;
  }
  return {
    transmit: (c) => new Promise((resolve, reject) => found.transmit(Buffer.from(c), 258, protocol, (e, r) => (e ? reject(e) : resolve(new Uint8Array(r))))),
    close: async () => {
      await new Promise<void>((resolve) => found.disconnect(0, () => resolve()));
      closeAll();
    },
  };
}

// The card counts entries in one byte: rotate to a fresh ticket well before a multi-entry ticket runs out.
// The card process loads the factory module the way this one was loaded: compiled (npm run bench) or from source.
const CARD_FACTORY = import.meta.url.endsWith('.ts') ? './card-factory.ts' : './card-factory.js';
const ABSENT_AID_SELECT = Uint8Array.from(Buffer.from('00A4040005A000000000', 'hex'));

/**
 * One gate transaction (CheckingTerminal.passGate: SELECT, VERIFY without TF_V, WRITE USAGE with its receipt
 * verified; entry and exit alternating on a multi-entry ticket), timed over PC/SC and in process in the same run,
 * plus the short-APDU round trip on the same card. Both cards are file images (fsync per `durableNvm`), so the
 * difference is the stack: pcsclite, pcscd, vpcd and the bridge process. Needs pcscd with vpcd and an empty
 * reader on `port`; start pcscd with tools/pcscd-start.sh (TCP_NODELAY preload) or each APDU costs ~44 ms.
 * Returns JSON-able figures in milliseconds.
 */
export async function benchGateOverPcsc(options: GateBenchOptions = {}): Promise<GateBenchResult> {
  const suite = options.suite ?? 'rsa';
  const mode = options.mode ?? 'pki';
  const iterations = options.iterations ?? 200;
  const warmup = options.warmup ?? 10;
  const roundTrips = options.roundTripIterations ?? 1000;
  const extendedLength = options.extendedLength ?? true;
  const durableNvm = options.durableNvm ?? false;
  const port = options.port ?? 35963;
  const reader = options.reader ?? `Virtual PCD 00 ${String(port - 35963).padStart(2, '0')}`;

  const world = World.create(suite);
  const dir = mkdtempSync(join(tmpdir(), 'eticket-bench-gate-'));
  const release = options.lock === false ? () => undefined : await lockVpcd();
  let card: VpcdChild | undefined;
  let pcscTransport: PcscTransport | undefined;
  try {
    // Personalised once; each side then gets its own copy of the image, so neither writes the other's file.
    const served = join(dir, 'pcsc.img');
    const local = join(dir, 'local.img');
    await world.newCard({ backend: served });
    copyFileSync(served, local);

    const localCard = openBenchCardImage(local, durableNvm);
    const inProc = new GateRig(world, new EmulatorTransport(localCard, 'emulator', { extendedLength }), { mode, extendedLength });
    card = await startVpcdChild(
      { module: fileURLToPath(new URL(CARD_FACTORY, import.meta.url)), export: 'openBenchCardImage', args: [served, durableNvm] },
      { port },
    );
    await waitForCard(reader, { timeoutMs: 10_000 });
    pcscTransport = new PcscTransport({ reader, extendedLength });
    const overPcsc = new GateRig(world, pcscTransport, { mode, extendedLength });

    // Interleaved, one sample each in turn: load on the machine drifts, and both sides should see the same drift.
    const gateIn: number[] = [];
    const gateOver: number[] = [];
    for (let i = 0; i < warmup; i++) {
      await inProc.time(1);
      await overPcsc.time(1);
    }
    const before = { ...overPcsc.session.stats };
    for (let i = 0; i < iterations; i++) {
      gateIn.push(...(await inProc.time(1)));
      gateOver.push(...(await overPcsc.time(1)));
    }
    const after = overPcsc.session.stats;

    const t = pcscTransport;
    const direct = await directPcsc(reader);
    const rtIn: number[] = [];
    const rtOver: number[] = [];
    const rtDirect: number[] = [];
    try {
      for (let i = 0; i < warmup; i++) {
        localCard.transmit(ABSENT_AID_SELECT);
        await t.transmit(ABSENT_AID_SELECT);
        await direct.transmit(ABSENT_AID_SELECT);
      }
      for (let i = 0; i < roundTrips; i++) {
        rtIn.push(...(await timeCalls(1, () => localCard.transmit(ABSENT_AID_SELECT))));
        rtOver.push(...(await timeCalls(1, () => t.transmit(ABSENT_AID_SELECT))));
        rtDirect.push(...(await timeCalls(1, () => direct.transmit(ABSENT_AID_SELECT))));
      }
    } finally {
      await direct.close();
    }

    return {
      suite,
      mode,
      reader,
      extendedLength,
      durableNvm,
      iterations,
      gate: { inProcess: latency(gateIn), pcsc: latency(gateOver) },
      // Ticket rotations (untimed) add a few APDUs to these counters; with the defaults there are none.
      apdusPerGate: (after.apdus - before.apdus) / iterations,
      bytesPerGate: (after.bytesOut + after.bytesIn - before.bytesOut - before.bytesIn) / iterations,
      roundTrip: { inProcess: latency(rtIn), pcsc: latency(rtOver), pcscDirect: latency(rtDirect) },
    };
  } finally {
    await pcscTransport?.disconnect().catch(() => undefined);
    // Out as pcscd sees it before the readers are handed on (the next holder's card would be taken for this one).
    await pullCard(card).catch(() => undefined);
    release();
    rmSync(dir, { recursive: true, force: true });
  }
}
