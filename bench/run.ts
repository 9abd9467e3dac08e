// `npm run bench`: gate transactions per mode and suite against their crypto floor, issuance, wire and NVM
// costs, a card farm, SM9 primitives, PC/SC when available, the chip cost model and a metro-scale simulation
// (`--sim-duration <s>`, 0 to skip; `eticket simulate` runs it alone); `--json` for machines.

import { createCipheriv, createDecipheriv, hash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EticketCard } from '../card/applet.js';
import { MemoryBackend } from '../card/nvm.js';
import type { GateMode } from '../host/checking.js';
import { World, suiteWorldBuilders } from '../testing/world.js';
import { CardSession, type TraceEntry } from '../host/session.js';
import { GateRig, STATION } from './gate-rig.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { cmac } from '../sdk/crypto/aes.js';
import { suiteProvider } from '../sdk/crypto/suites.js';
import { diversify, maskSerial, privacyKey, sessionKeys, SYM_CONTEXT, sessionMac, unmaskSerial } from '../sdk/crypto/symmetric.js';
import { LIMITS } from '../sdk/spec.js';
import { toServiceDate } from '../sdk/fields.js';
import type { SuiteName } from '../sdk/spec.js';
import { benchBackoffice, type BackofficeBench } from './backoffice.js';
import { benchCliIssuance, type CliIssuanceBench } from './cli-issuance.js';
import { CHIP_PROFILES, estimateTap, type CardOp, type TapEstimate, type TraceExchange } from './cost-model.js';
import { latency, timeCalls, timeCallsWithCpu, timeOneWithCpu, type Latency } from './stats.js';
import { runSimulation, type SimulationReport } from './simulation.js';

const args = new Set(process.argv.slice(2));
const JSON_OUT = args.has('--json');
const QUICK = args.has('--quick');
/** Only the gate transactions against their floors (a quick look at the overhead ratios, about a minute). */
const GATE_ONLY = args.has('--gate-only');
/** Wall seconds of the metro simulation: 60 by default (10 with --quick), 600 for the issue-14 figure, 0 skips it. */
const SIM_DURATION = (() => {
  const i = process.argv.indexOf('--sim-duration');
  if (i < 0) return QUICK ? 10 : 60;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write('bench: --sim-duration takes whole seconds (0 skips the simulation)\n');
    process.exit(2);
  }
  return v;
})();
const log = (s: string) => {
  if (!JSON_OUT) process.stdout.write(s + '\n');
};
const progress = (s: string) => process.stderr.write(`[bench] ${s}\n`);


// ---- crypto floors: the same operations a transaction needs, called directly --------------------

/** Whole blocks without padding: final() adds nothing, so no copy (as sdk/crypto/aes.ts does). */
function whole(out: Buffer, tail: Buffer): Buffer {
  if (tail.length !== 0) throw new Error('floor: not whole blocks');
  return out;
}
function ecb(key: Uint8Array, block: Uint8Array): Buffer {
  const c = createCipheriv('aes-128-ecb', key, null);
  c.setAutoPadding(false);
  return whole(c.update(block), c.final());
}
function cbcEnc(key: Uint8Array, data: Uint8Array, iv: Uint8Array = Buffer.alloc(16)): Buffer {
  const c = createCipheriv('aes-128-cbc', key, iv);
  c.setAutoPadding(false);
  return whole(c.update(data), c.final());
}
function cbcDec(key: Uint8Array, data: Uint8Array, iv: Uint8Array = Buffer.alloc(16)): Buffer {
  const c = createDecipheriv('aes-128-cbc', key, iv);
  c.setAutoPadding(false);
  return whole(c.update(data), c.final());
}
/** What sdk/crypto/suite.ts sha256 calls for one part (the face, the view, the command): the one-shot hash. */
const sha = (d: Uint8Array) => hash('sha256', d, 'buffer');

/**
 * Sizes of one tap's messages, from its trace, so the floor works on the same byte counts. The view is the fixed
 * length of protocol version 2 (found or not, it is padded to limits.viewLength); `face` is the encoded A1 the
 * card hashes for DF20.
 */
function sizes(trace: TraceEntry[], face = 160) {
  const write = trace.find((e) => e.command === 'WRITE USAGE')!;
  return { view: LIMITS.viewLength, command: write.apdu.length - 7, receipt: write.response.length - 2, face };
}

/** A pki tap: both challenges, KEM + AES envelope (random IV), two signatures and two verifications, digests. */
function pkiFloor(w: World, card: EticketCard, sz: ReturnType<typeof sizes>): () => void {
  const p = suiteProvider(w.suite);
  const cardSigner = p.signer(card.persistent.signKey!.privateKey);
  const terminal = w.keys.terminalKeys;
  const view = randomBytes(sz.view + 16 - (sz.view % 16));
  const cmd = randomBytes(sz.command);
  const rcpt = randomBytes(sz.receipt);
  const face = randomBytes(sz.face);
  return () => {
    // gate: RT of the VERIFY; card: RC, the one-time challenge the WRITE USAGE must carry
    randomBytes(LIMITS.terminalChallengeLength);
    randomBytes(LIMITS.challengeLength);
    // card: VERIFY seals the view to the terminal (fresh IV) and keeps its digest (DF21)
    const { key, encapsulation } = p.suite.encapsulate(terminal.encryption.publicKey);
    const kEnc = ecb(key, Buffer.alloc(16, 1));
    const kMac = ecb(key, Buffer.alloc(16, 2));
    const iv = randomBytes(16);
    const ct = cbcEnc(kEnc, view, iv);
    const mac = cmac(kMac, ct);
    sha(view);
    // terminal opens it and digests it for DF21
    const k2 = terminal.encryption.decapsulate(encapsulation);
    cmac(ecb(k2, Buffer.alloc(16, 2)), ct);
    sha(cbcDec(ecb(k2, Buffer.alloc(16, 1)), ct, iv));
    // terminal signs WRITE USAGE; card verifies, digests command and face, signs the receipt; terminal verifies it and the face digest
    const sig = terminal.signature.sign(cmd);
    if (!p.suite.verify(terminal.signature.publicKey, cmd, sig)) throw new Error('floor: verify');
    sha(cmd);
    sha(face);
    const rsig = cardSigner.sign(rcpt);
    sha(cmd);
    sha(face);
    if (!p.suite.verify(cardSigner.publicKey, rcpt, rsig)) throw new Error('floor: receipt');
    void mac;
  };
}

/** A sym tap: serial masking, diversification at the gate, session keys on both sides, one encryption, three MACs checked, the face digest. */
function symFloor(w: World, serial: Uint8Array, sz: ReturnType<typeof sizes>): () => void {
  const view = randomBytes(sz.view + 16 - (sz.view % 16));
  const cmd = randomBytes(sz.command);
  const rcpt = randomBytes(sz.receipt);
  const face = randomBytes(sz.face);
  const chain = new Uint8Array(8);
  const kCard = diversify(w.masterKey.key, serial, w.operator);
  const kPriv = privacyKey(w.masterKey.key, w.operator);
  return () => {
    const rt = randomBytes(16);
    const rc = randomBytes(8);
    // card
    const masked = maskSerial(kPriv, serial, rc);
    const ks = sessionKeys(kCard, rt, rc);
    const ct = cbcEnc(ks.enc, view);
    sessionMac(ks.mac, SYM_CONTEXT.VIEW, chain, ct);
    sha(face);
    // gate
    unmaskSerial(kPriv, masked, rc);
    sha(face);
    const kg = sessionKeys(diversify(w.masterKey.key, serial, w.operator), rt, rc);
    sessionMac(kg.mac, SYM_CONTEXT.VIEW, chain, ct);
    cbcDec(kg.enc, ct);
    sessionMac(kg.mac, SYM_CONTEXT.COMMAND, chain, cmd); // gate MACs the command
    sessionMac(ks.mac, SYM_CONTEXT.COMMAND, chain, cmd); // card checks it
    sessionMac(ks.mac, SYM_CONTEXT.RECEIPT, chain, rcpt); // card MACs the receipt
    sessionMac(kg.mac, SYM_CONTEXT.RECEIPT, chain, rcpt); // gate checks it
  };
}

/**
 * Card-side operations of one tap, by mode, priced by the cost model. Protocol version 2 adds, per tap: the view
 * padded to limits.viewLength (more AES blocks to encrypt and MAC), the SHA-256 of the view the card keeps (pki),
 * the SHA-256 of the face for the receipt's DF20 (both modes), and the one-block serial mask (sym).
 */
export function cardOps(mode: GateMode, suite: SuiteName, trace: TraceEntry[], faceBytes?: number): CardOp[] {
  const sz = sizes(trace, faceBytes);
  const nvm: CardOp = { op: 'nvm-write', bytes: 48 }; // TF_B record and counter
  const paddedView = sz.view + 16 - (sz.view % 16); // ISO/IEC 9797-1 method 2 on the fixed-length view
  if (mode === 'sym') {
    return [
      { op: 'random', bytes: 8 },
      { op: 'cmac', bytes: 38 },
      { op: 'cmac', bytes: 38 },
      { op: 'aes', bytes: 16 }, // DF24: the serial masked under K_priv
      { op: 'aes', bytes: paddedView },
      { op: 'cmac', bytes: paddedView + 45 },
      { op: 'cmac', bytes: sz.command + 30 },
      { op: 'sha256', bytes: sz.face }, // DF20
      nvm,
      { op: 'cmac', bytes: sz.receipt + 20 },
    ];
  }
  if (suite === 'sm9') return [{ op: 'sm9', what: 'encapsulate' }, { op: 'sm9', what: 'verify' }, { op: 'sm9', what: 'sign' }];
  return [
    { op: 'random', bytes: 16 },
    { op: 'random', bytes: 16 },
    { op: 'rsa-public', what: 'encrypt' },
    { op: 'aes', bytes: 16 },
    { op: 'aes', bytes: 16 },
    { op: 'aes', bytes: paddedView },
    { op: 'cmac', bytes: paddedView + 300 },
    { op: 'sha256', bytes: sz.view }, // the shown view's digest, kept for DF21
    { op: 'sha256', bytes: sz.command },
    { op: 'rsa-public', what: 'verify' },
    { op: 'sha256', bytes: sz.command },
    { op: 'sha256', bytes: sz.face }, // DF20
    nvm,
    { op: 'sha256', bytes: sz.receipt },
    { op: 'rsa-private', what: 'sign' },
  ];
}

interface GateEntry {
  mode: GateMode;
  suite: SuiteName;
  iterations: number;
  medianMs: number;
  p99Ms: number;
  tps: number;
  cryptoFloorMs: number;
  overheadRatio: number;
  /** What the emulator adds per APDU, absolute: (tap median − floor median) / APDUs, in microseconds. */
  overheadPerApduUs: number;
  /** The same in CPU time of the process (stats.ts timeCallsWithCpu): what the work costs, without waits for a core. */
  cpuMedianMs: number;
  cpuFloorMs: number;
  cpuOverheadRatio: number;
  cpuOverheadPerApduUs: number;
  /** The median of the pairs' own ratios (tap / floor of one pair), wall and CPU: the paired estimator of the overhead. */
  pairRatioMedian: number;
  cpuPairRatioMedian: number;
  /** Wall medians with taps and floor calls in batches (a fifth of each, five times): the measurement before pairs. */
  batchMedianMs: number;
  batchFloorMs: number;
  batchOverheadRatio: number;
  apdus: number;
  wireBytes: number;
  modeledTapMs424: number | null;
  modeled: TapEstimate[];
}

async function benchGate(w: World, mode: GateMode, iterations: number): Promise<GateEntry> {
  const c = await w.newCard({ capacity: 64 * 1024 });
  const rig = new GateRig(w, new EmulatorTransport(c.card), { mode });
  // Warm up to the steady state a gate runs in (V8 has optimised the tap's code): a second of taps, at least 5.
  for (let i = 0, until = performance.now() + 1000; i < 5 || performance.now() < until; i++) {
    await rig.prepare();
    await rig.pass();
  }
  const { trace, apdus, bytes } = await rig.traced();
  const sz = sizes(trace, rig.faceBytes);
  const floorOnce = mode === 'sym' ? symFloor(w, c.card.persistent.serial, sz) : pkiFloor(w, c.card, sz);
  for (let i = 0, until = performance.now() + 300; i < 5 || performance.now() < until; i++) floorOnce();
  // Pairs: each tap is timed next to one floor call, in a random order per pair, so both see the same machine
  // state (CPU frequency, a neighbour's load, GC, what the other left in the caches) at the finest grain there is.
  const taps: number[] = [];
  const floors: number[] = [];
  const tapsCpu: number[] = [];
  const floorsCpu: number[] = [];
  for (let i = 0; i < iterations; i++) {
    await rig.prepare();
    let t: { wall: number; cpu: number };
    let f: { wall: number; cpu: number };
    if (Math.random() < 0.5) {
      t = await rig.timeOneWithCpu();
      f = await timeOneWithCpu(floorOnce);
    } else {
      f = await timeOneWithCpu(floorOnce);
      t = await rig.timeOneWithCpu();
    }
    taps.push(t.wall);
    tapsCpu.push(t.cpu);
    floors.push(f.wall);
    floorsCpu.push(f.cpu);
  }
  // The same in batches, as measured up to 2026-12-02: a fifth of the taps, then as many floor calls, five times.
  // The floor in a tight loop keeps its code and data hot, which no tap's cryptography has; reported beside.
  const batchTaps: number[] = [];
  const batchFloors: number[] = [];
  const rounds = 5;
  for (let r = 0; r < rounds; r++) {
    batchTaps.push(...(await rig.timeWithCpu(Math.ceil(iterations / rounds))).wall);
    batchFloors.push(...(await timeCallsWithCpu(Math.ceil(iterations / rounds), floorOnce)).wall);
  }
  const t = latency(taps);
  const f = latency(floors);
  const tc = latency(tapsCpu).medianMs;
  const fc = latency(floorsCpu).medianMs;
  const pr = latency(taps.map((x, i) => x / floors[i]!)).medianMs;
  const prc = latency(tapsCpu.map((x, i) => x / floorsCpu[i]!)).medianMs;
  const bt = latency(batchTaps).medianMs;
  const bf = latency(batchFloors).medianMs;
  const exchanges: TraceExchange[] = trace.map((e) => ({ command: e.command, apdu: e.apdu, response: e.response }));
  const modeled = estimateTap(exchanges, cardOps(mode, w.suite, trace, rig.faceBytes));
  const m424 = modeled.find((m) => m.profile === 'jcop4' && m.kbitPerS === 424)!.totalMs;
  return {
    mode,
    suite: w.suite,
    iterations: taps.length,
    medianMs: t.medianMs,
    p99Ms: t.p99Ms,
    tps: 1000 / (taps.reduce((a, b) => a + b, 0) / taps.length),
    cryptoFloorMs: f.medianMs,
    overheadRatio: t.medianMs / f.medianMs,
    overheadPerApduUs: ((t.medianMs - f.medianMs) * 1000) / apdus,
    cpuMedianMs: tc,
    cpuFloorMs: fc,
    cpuOverheadRatio: tc / fc,
    cpuOverheadPerApduUs: ((tc - fc) * 1000) / apdus,
    pairRatioMedian: pr,
    cpuPairRatioMedian: prc,
    batchMedianMs: bt,
    batchFloorMs: bf,
    batchOverheadRatio: bt / bf,
    apdus,
    wireBytes: bytes,
    modeledTapMs424: Number.isFinite(m424) ? m424 : null,
    modeled,
  };
}

interface IssuanceEntry {
  suite: SuiteName;
  tickets: number;
  signMs: number;
  sealMs: number;
  loadMs: number;
  ticketsPerSecond: number;
  cryptoFloorMs: number;
  ratio: number;
  nvmBytesPerTicket: number;
}

async function benchIssuance(w: World, n: number): Promise<IssuanceEntry> {
  const c = await w.newCard({ capacity: 1024 * 1024 });
  const creds = await c.issuing.credentials();
  const faces = Array.from({ length: n + 3 }, () => w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(w.now * 1000)), train: 'G1', origin: 'BJS', destination: 'SHH', seat: '12A', passenger: 'ZHANG San' }));
  for (const f of faces.splice(0, 3)) await c.issuing.load(w.authority.issue(f, creds).sealed); // warm up
  const used0 = c.card.usedBytes;
  const sign: number[] = [];
  const seal: number[] = [];
  const load: number[] = [];
  for (const f of faces) {
    let t0 = process.hrtime.bigint();
    const signed = w.authority.sign(f, creds);
    sign.push(Number(process.hrtime.bigint() - t0) / 1e6);
    t0 = process.hrtime.bigint();
    const sealed = w.authority.seal(signed, creds);
    seal.push(Number(process.hrtime.bigint() - t0) / 1e6);
    t0 = process.hrtime.bigint();
    await c.issuing.load(sealed);
    load.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const nvmBytesPerTicket = (c.card.usedBytes - used0) / n;
  // Floor: sign TF_V, encapsulate + AES to the card, decapsulate + AES + verify TF_V on the card.
  const p = suiteProvider(w.suite);
  const cardDec = p.decrypter(c.card.persistent.encKey!.privateKey);
  const payload = randomBytes(Math.round(nvmBytesPerTicket / 16) * 16);
  const floorOnce = () => {
    const sig = w.keys.authorityKey.sign(payload);
    const { key, encapsulation } = p.suite.encapsulate(cardDec.publicKey);
    const ct = cbcEnc(ecb(key, Buffer.alloc(16, 1)), payload);
    cmac(ecb(key, Buffer.alloc(16, 2)), ct);
    const k2 = cardDec.decapsulate(encapsulation);
    cmac(ecb(k2, Buffer.alloc(16, 2)), ct);
    cbcDec(ecb(k2, Buffer.alloc(16, 1)), ct);
    if (!p.suite.verify(w.keys.authorityKey.publicKey, payload, sig)) throw new Error('floor: TF_V');
  };
  floorOnce();
  const floor = latency(await timeCalls(Math.min(n, 50), floorOnce)).medianMs;
  const per = latency(sign).medianMs + latency(seal).medianMs + latency(load).medianMs;
  return {
    suite: w.suite,
    tickets: n,
    signMs: latency(sign).medianMs,
    sealMs: latency(seal).medianMs,
    loadMs: latency(load).medianMs,
    ticketsPerSecond: 1000 / per,
    cryptoFloorMs: floor,
    ratio: per / floor,
    nvmBytesPerTicket,
  };
}

interface FarmEntry {
  mode: GateMode;
  suite: SuiteName;
  cards: number;
  /** Image bytes of one card (what it holds). */
  imageBytes: number;
  /** Retained heap + array buffers per opened card, after forced GC: before any tap, and after each card's taps. */
  bytesPerCard: number;
  bytesPerCardAfterTaps: number;
  transactions: number;
  /** Taps per second round robin over the cards, one thread (so per core). */
  tps: number;
}

/**
 * Many opened cards in one process: clones of one personalised image (bench/card-farm.ts makes distinct ones),
 * each with its own NVM store and RAM state. Memory is measured with the cards opened and at rest, then again
 * after the taps (each card then committed at least once) with the terminals dropped.
 */
async function benchFarm(w: World, mode: GateMode, cards: number, transactions: number): Promise<FarmEntry> {
  const proto = await w.newCard();
  const face = w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(w.now * 1000)), train: 'BENCH', origin: STATION, destination: STATION, maxEntries: 255 });
  await proto.issuing.load(w.authority.issue(face, proto.credentials).sealed);
  const image = proto.card.image.slice();
  // A forced collection before and after makes the per-card figure the cards' retained memory, not garbage.
  setFlagsFromString('--expose_gc');
  const collect = async () => {
    const gc = runInNewContext('gc') as () => void;
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r)); // let external buffers be released between passes
    }
  };
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  await collect();
  const mem0 = used();
  const farm: EticketCard[] = [];
  for (let i = 0; i < cards; i++) {
    const backend = new MemoryBackend();
    backend.write('image', 0, image);
    farm.push(EticketCard.open(backend));
  }
  await collect();
  const bytesPerCard = (used() - mem0) / cards;
  let gates: { gate: ReturnType<World['checkingTerminal']>; passes: number }[] | null = farm.map((card) => {
    const session = new CardSession(new EmulatorTransport(card));
    return { gate: w.checkingTerminal(session, { station: STATION, mode }), passes: 0 };
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < transactions; i++) {
    const g = gates[i % gates.length]!;
    const r = await g.gate.passGate(g.passes % 2 === 0 ? 'entry' : 'exit', { train: 'BENCH' });
    if (!r.decision.pass) throw new Error(`farm tap refused: ${r.decision.message}`);
    g.passes++;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  gates = null;
  await collect();
  const bytesPerCardAfterTaps = (used() - mem0) / cards;
  if (farm.length !== cards) throw new Error('farm lost cards');
  return { mode, suite: w.suite, cards, imageBytes: image.length, bytesPerCard, bytesPerCardAfterTaps, transactions, tps: transactions / seconds };
}

// ---- the previous results table ------------------------------------------------------------------

/** Figures of the results table in docs/performance.md (bench/previous.json), to compare a run with. */
interface Previous {
  date: string;
  note: string;
  /**
   * Gate figures. overheadRatio is of taps and floors timed in pairs when `batchOverheadRatio` is there (from
   * 2026-12-02 on), of batches before: the comparison sets each against its own kind.
   */
  gate: { mode: GateMode; suite: SuiteName; medianMs: number; cryptoFloorMs: number; overheadRatio: number; batchOverheadRatio?: number; tps: number }[];
  farm: { mode: GateMode; suite: SuiteName; bytesPerCard: number; tps: number }[];
}

const PREVIOUS_FILE = new URL('../../bench/previous.json', import.meta.url);

function readPrevious(): Previous | null {
  try {
    return JSON.parse(readFileSync(PREVIOUS_FILE, 'utf8')) as Previous;
  } catch {
    return null;
  }
}

interface Comparison {
  what: string;
  previous: number;
  now: number;
  /** now / previous. */
  ratio: number;
}

function compare(prev: Previous, gate: GateEntry[], farm: FarmEntry[]): Comparison[] {
  const out: Comparison[] = [];
  const add = (what: string, previous: number | undefined, now: number) => {
    if (previous !== undefined && previous > 0) out.push({ what, previous, now, ratio: now / previous });
  };
  for (const g of gate) {
    const p = prev.gate.find((x) => x.mode === g.mode && x.suite === g.suite);
    add(`${g.mode}/${g.suite} tap median ms`, p?.medianMs, g.medianMs);
    add(`${g.mode}/${g.suite} crypto floor ms`, p?.cryptoFloorMs, g.cryptoFloorMs);
    const paired = p?.batchOverheadRatio !== undefined;
    add(`${g.mode}/${g.suite} overhead ratio`, paired ? p?.overheadRatio : undefined, g.overheadRatio);
    add(`${g.mode}/${g.suite} overhead ratio, batches`, paired ? p?.batchOverheadRatio : p?.overheadRatio, g.batchOverheadRatio);
    add(`${g.mode}/${g.suite} taps/s per core`, p?.tps, g.tps);
  }
  for (const f of farm) {
    const p = prev.farm.find((x) => x.mode === f.mode && x.suite === f.suite);
    add(`farm ${f.mode}/${f.suite} bytes per card after taps`, p?.bytesPerCard, f.bytesPerCardAfterTaps);
    add(`farm ${f.mode}/${f.suite} taps/s`, p?.tps, f.tps);
  }
  return out;
}

/** Asymmetric primitives of each suite in this run, so SM9's figures sit next to RSA's. */
async function benchPrimitives(w: World, iterations: number): Promise<Record<string, Latency>> {
  const p = suiteProvider(w.suite);
  const msg = randomBytes(200);
  const signer = w.keys.authorityKey;
  const sig = signer.sign(msg);
  const dec = w.keys.terminalKeys.encryption;
  const { encapsulation } = p.suite.encapsulate(dec.publicKey);
  const out: Record<string, Latency> = {
    sign: latency(await timeCalls(iterations, () => signer.sign(msg))),
    verify: latency(await timeCalls(iterations, () => p.suite.verify(signer.publicKey, msg, sig))),
    encapsulate: latency(await timeCalls(iterations, () => p.suite.encapsulate(dec.publicKey))),
    decapsulate: latency(await timeCalls(iterations, () => dec.decapsulate(encapsulation))),
  };
  if (w.suite === 'sm9') {
    try {
      const { benchSm9 } = await import('./sm9.js');
      for (const [k, v] of Object.entries(await benchSm9(Math.max(5, Math.floor(iterations / 2))))) out[`raw ${k}`] = v;
    } catch (e) {
      progress(`benchSm9 unavailable: ${(e as Error).message}`);
    }
  }
  return out;
}

/** pcscd with vpcd listening on 35963 (seen in /proc/net/tcp, never probed: a connect would insert a card). */
function pcscAvailable(): { ok: boolean; why: string } {
  if (process.env.ETICKET_PCSC === '0') return { ok: false, why: 'ETICKET_PCSC=0' };
  try {
    const listening = ['/proc/net/tcp', '/proc/net/tcp6']
      .filter((f) => existsSync(f))
      .some((f) => readFileSync(f, 'utf8').split('\n').some((l) => /:8C7B\s+[0-9A-F:]+\s+0A\s/i.test(l)));
    if (listening) return { ok: true, why: 'vpcd port 35963 is listening' };
    if (process.env.ETICKET_PCSC === '1') return { ok: false, why: 'ETICKET_PCSC=1 but no vpcd listening on 35963 (start pcscd: tools/pcscd-start.sh)' };
    return { ok: false, why: 'no pcscd with vpcd listening on port 35963 (set up with .ci/run or tools/pcscd-start.sh)' };
  } catch (e) {
    return { ok: false, why: `cannot read /proc/net/tcp: ${(e as Error).message}` };
  }
}

async function benchPcsc(iterations: number): Promise<{ skipped?: string; results?: unknown }> {
  const avail = pcscAvailable();
  if (!avail.ok) return { skipped: avail.why };
  try {
    const mod = (await import('./pcsc.js')) as Record<string, unknown>;
    const gate = mod.benchGateOverPcsc as ((o: { suite?: SuiteName; iterations?: number }) => Promise<unknown>) | undefined;
    if (!gate) return { skipped: 'bench/pcsc.ts exports no benchGateOverPcsc' };
    return { results: await gate({ suite: 'rsa', iterations }) };
  } catch (e) {
    return { skipped: `PC/SC bench failed: ${(e as Error).message}` };
  }
}

// ---- metro simulation (bench/simulation.ts): the headline figures only, the full report is `eticket simulate --json`

interface SimulationSummary {
  engine: string;
  cards: number;
  gates: number;
  runS: number;
  offeredTapsPerS: number;
  gateTapsPerS: number;
  ingestPerS: number;
  endToEndPerS: number;
  lagMaxS: number;
  firstHalfLagMaxS: number;
  secondHalfLagMaxS: number;
  /** Upload lag at the end of the run's last tenth: bounded when it has not grown past a few upload delays. */
  lastTenthLagS: number;
  tapLatencyP99Ms: number;
  imageBytesPerCard: number;
  heapBytesPerCard: number;
  injected: number;
  anomaliesFound: number;
  missed: number;
  falsePositives: number;
}

function summarise(r: SimulationReport): SimulationSummary {
  return {
    engine: r.engine,
    cards: r.memory.cards,
    gates: r.options.stations * r.options.gatesPerStation,
    runS: r.runS,
    offeredTapsPerS: r.offeredTapsPerS,
    gateTapsPerS: r.gateTapsPerS,
    ingestPerS: r.ingestPerS,
    endToEndPerS: r.endToEndPerS,
    lagMaxS: Math.max(r.lag.firstHalfMaxMs, r.lag.secondHalfMaxMs) / 1000,
    firstHalfLagMaxS: r.lag.firstHalfMaxMs / 1000,
    secondHalfLagMaxS: r.lag.secondHalfMaxMs / 1000,
    lastTenthLagS: (r.lagTrend.at(-1) ?? 0) / 1000,
    tapLatencyP99Ms: r.tapLatencyP99Ms,
    imageBytesPerCard: r.memory.imageBytesPerCard,
    heapBytesPerCard: r.memory.heapBytesPerCard,
    injected: r.anomalies.injected.length,
    anomaliesFound: r.anomalies.injected.length - r.anomalies.missed.length,
    missed: r.anomalies.missed.length,
    falsePositives: r.anomalies.falsePositives.length,
  };
}

// ---- main ------------------------------------------------------------------------------------------

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 3 : 1) : 'n/a');

async function main(): Promise<void> {
  const started = Date.now();
  const suites = (['rsa', 'sm9'] as SuiteName[]).filter((s) => suiteWorldBuilders[s]);
  const gateN = (mode: GateMode, suite: SuiteName) => (QUICK ? 10 : mode === 'sym' ? 2000 : suite === 'sm9' ? 60 : 400);
  const result = {
    schema: 'eticket-bench/1',
    machine: { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), loadAverage: loadavg() },
    date: new Date().toISOString(),
    quick: QUICK,
    gate: [] as GateEntry[],
    issuance: [] as IssuanceEntry[],
    farm: [] as FarmEntry[],
    primitives: {} as Record<string, Record<string, Latency>>,
    chipProfiles: CHIP_PROFILES,
    pcsc: {} as { skipped?: string; results?: unknown },
    backoffice: {} as BackofficeBench,
    cliIssuance: null as CliIssuanceBench | null,
    simulation: null as null | { skipped: string } | SimulationSummary,
    goals: {} as Record<string, { target: string; value: number | null; met: boolean }>,
    previous: null as { date: string; comparisons: Comparison[] } | null,
    seconds: 0,
  };
  for (const suite of suites) {
    progress(`${suite}: building the back office`);
    const w = World.create(suite);
    for (const mode of ['pki', 'sym'] as GateMode[]) {
      progress(`${suite}/${mode}: gate transactions`);
      result.gate.push(await benchGate(w, mode, gateN(mode, suite)));
    }
    if (GATE_ONLY) continue;
    progress(`${suite}: issuance`);
    result.issuance.push(await benchIssuance(w, QUICK ? 5 : suite === 'sm9' ? 30 : 100));
    progress(`${suite}: primitives`);
    result.primitives[suite] = await benchPrimitives(w, QUICK ? 5 : suite === 'sm9' ? 20 : 100);
    if (suite === 'rsa') {
      for (const mode of ['sym', 'pki'] as GateMode[]) {
        progress(`${suite}/${mode}: card farm`);
        result.farm.push(await benchFarm(w, mode, QUICK ? 100 : mode === 'sym' ? 10_000 : 1000, QUICK ? 100 : mode === 'sym' ? 10_000 : 500));
      }
    }
  }
  if (GATE_ONLY) {
    result.pcsc = { skipped: '--gate-only' };
    result.simulation = { skipped: '--gate-only' };
  } else {
    progress('PC/SC');
    result.pcsc = await benchPcsc(QUICK ? 20 : 200);
    result.backoffice = await benchBackoffice(QUICK, progress);
    result.cliIssuance = await benchCliIssuance(QUICK, progress, loadavg);
    // Issue 13: `eticket issue --from` at least half as fast as its cryptography alone, start-up included.
    result.goals['CLI batch issuance / crypto floor'] = { target: '≥ 0.5', value: result.cliIssuance.ratioCommand, met: result.cliIssuance.ratioCommand >= 0.5 };
  }
  if (GATE_ONLY) {
    // nothing more
  } else if (SIM_DURATION > 0) {
    progress(`metro simulation: ${SIM_DURATION} s`);
    result.simulation = summarise(
      await runSimulation({
        cards: QUICK ? 2000 : 20_000,
        stations: QUICK ? 12 : 24,
        lines: 3,
        gatesPerStation: QUICK ? 2 : 4,
        durationS: SIM_DURATION,
        // 1,050 offered: a gate uploads when its oldest record is 5 s old, so the last seconds' taps are still in flight
        // when the run ends; offering exactly 1,000 could not show 1,000 carried end to end.
        rate: QUICK ? 200 : 1050,
        workers: 2,
        rollbacks: 5,
        clones: 5,
        sellers: 3,
        seed: 'bench',
        log: (l) => progress(`simulation: ${l}`),
      }),
    );
    const s = result.simulation;
    // Kept up: the upload lag at the end is at most three upload delays (5 s each), not growing with the run.
    result.goals['simulation taps/s end to end'] = { target: QUICK ? '(smoke)' : '≥ 1000, lag at the end ≤ 15 s', value: s.endToEndPerS, met: QUICK || (s.endToEndPerS >= 1000 && s.lastTenthLagS <= 15) };
    result.goals['simulation anomalies found'] = { target: 'all injected, no false positive', value: s.anomaliesFound, met: s.missed === 0 && s.falsePositives === 0 };
  } else result.simulation = { skipped: '--sim-duration 0' };
  const sym = result.gate.filter((g) => g.mode === 'sym');
  const worstSym424 = Math.max(...sym.map((g) => g.modeledTapMs424 ?? Infinity));
  result.goals.symTapJcop4At424 = { target: '≤ 100 ms', value: worstSym424, met: worstSym424 <= 100 };
  // Issue 16's targets: a sym tap within 2× its crypto floor, pki/rsa 1.3×, pki/sm9 1.1×.
  const target = (g: GateEntry) => (g.mode === 'sym' ? 2.0 : g.suite === 'sm9' ? 1.1 : 1.3);
  for (const g of result.gate) {
    result.goals[`overhead ${g.mode}/${g.suite}, wall time`] = { target: `≤ ${target(g).toFixed(1)}`, value: g.overheadRatio, met: g.overheadRatio <= target(g) };
    result.goals[`overhead ${g.mode}/${g.suite}, CPU time`] = { target: `≤ ${target(g).toFixed(1)}`, value: g.cpuOverheadRatio, met: g.cpuOverheadRatio <= target(g) };
  }
  for (const f of result.farm) {
    result.goals[`memory per card, farm ${f.mode}/${f.suite}`] = { target: '≤ 8192 bytes', value: f.bytesPerCardAfterTaps, met: f.bytesPerCardAfterTaps <= 8192 };
  }
  const previous = readPrevious();
  if (previous) result.previous = { date: previous.date, comparisons: compare(previous, result.gate, result.farm) };
  if (args.has('--record') && !QUICK && !GATE_ONLY) {
    const record: Previous = {
      date: result.date,
      note: `npm run bench on ${result.machine.cpu} × ${result.machine.cores}, Node ${result.machine.node}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
      gate: result.gate.map((g) => ({ mode: g.mode, suite: g.suite, medianMs: g.medianMs, cryptoFloorMs: g.cryptoFloorMs, overheadRatio: g.overheadRatio, batchOverheadRatio: g.batchOverheadRatio, tps: g.tps })),
      farm: result.farm.map((f) => ({ mode: f.mode, suite: f.suite, bytesPerCard: f.bytesPerCardAfterTaps, tps: f.tps })),
    };
    writeFileSync(PREVIOUS_FILE, JSON.stringify(record, null, 2) + '\n');
    progress(`recorded this run in ${fileURLToPath(PREVIOUS_FILE)}`);
  }
  result.seconds = (Date.now() - started) / 1000;

  if (JSON_OUT) {
    const { gate, ...rest } = result;
    const slim = gate.map(({ modeled, ...g }) => ({ ...g, modeled: modeled.map((m) => ({ ...m })) }));
    process.stdout.write(JSON.stringify({ ...rest, gate: slim }, null, 2) + '\n');
    return;
  }
  log(`eticket bench ${result.date}  ${result.machine.cpu} × ${result.machine.cores}, Node ${result.machine.node}${QUICK ? '  (--quick: smoke figures only)' : ''}`);
  log('\nGate transaction (SELECT, VERIFY, WRITE USAGE with receipt check), in-process emulator; each tap timed next to one\ncall of its crypto floor, in a random order per pair');
  log(`load average at start ${result.machine.loadAverage.map((l) => l.toFixed(1)).join(' ')}, at end ${loadavg().map((l) => l.toFixed(1)).join(' ')} (${result.machine.cores} cores): read figures as ratios on a loaded machine`);
  log('mode  suite  n      median ms  p99 ms   taps/s/core  floor ms  overhead  µs/APDU  APDUs  bytes  tap@424 JCOP4');
  for (const g of result.gate) {
    log(`${g.mode.padEnd(5)} ${g.suite.padEnd(6)} ${String(g.iterations).padEnd(6)} ${f1(g.medianMs).padStart(9)}  ${f1(g.p99Ms).padStart(7)}  ${g.tps.toFixed(0).padStart(11)}   ${f1(g.cryptoFloorMs).padStart(7)}   ${g.overheadRatio.toFixed(2).padStart(6)}  ${g.overheadPerApduUs.toFixed(0).padStart(7)}   ${String(g.apdus).padStart(4)}  ${String(g.wireBytes).padStart(5)}  ${g.modeledTapMs424 === null ? 'n/a (no chip figures)' : g.modeledTapMs424.toFixed(1) + ' ms'}`);
  }
  log('\nThe same taps and floors in CPU time of the process (no waiting for a core counted)');
  log('mode  suite  tap ms   floor ms  overhead  µs/APDU');
  for (const g of result.gate) log(`${g.mode.padEnd(5)} ${g.suite.padEnd(6)} ${f1(g.cpuMedianMs).padStart(6)}  ${f1(g.cpuFloorMs).padStart(8)}   ${g.cpuOverheadRatio.toFixed(2).padStart(6)}  ${g.cpuOverheadPerApduUs.toFixed(0).padStart(7)}`);
  log('\nThe same overhead estimated otherwise: the median of the pairs\' own ratios (wall, CPU); taps and floors in batches');
  log('(a fifth of the taps, then as many floor calls, five times: the measurement before pairs)');
  log('mode  suite  pair ratio  CPU    batches: tap ms  floor ms  overhead');
  for (const g of result.gate) log(`${g.mode.padEnd(5)} ${g.suite.padEnd(6)} ${g.pairRatioMedian.toFixed(2).padStart(10)}  ${g.cpuPairRatioMedian.toFixed(2).padStart(5)}  ${f1(g.batchMedianMs).padStart(15)}  ${f1(g.batchFloorMs).padStart(8)}   ${g.batchOverheadRatio.toFixed(2).padStart(6)}`);
  log('\nModeled tap time on real chips (wire + card), ms: 106 / 424 kbit/s');
  log('mode  suite  ' + CHIP_PROFILES.map((p) => p.id.padEnd(16)).join(''));
  for (const g of result.gate) {
    const cells = CHIP_PROFILES.map((p) => {
      const at = (r: number) => g.modeled.find((m) => m.profile === p.id && m.kbitPerS === r)!.totalMs;
      return `${f1(at(106))} / ${f1(at(424))}`.padEnd(16);
    });
    log(`${g.mode.padEnd(5)} ${g.suite.padEnd(6)} ${cells.join('')}`);
  }
  log('\nIssuance (authority signs TF_V, seals to the card, issuing terminal LOADs)');
  log('suite  n     sign ms  seal ms  load ms  tickets/s  floor ms  ratio  NVM bytes/ticket');
  for (const i of result.issuance) {
    log(`${i.suite.padEnd(6)} ${String(i.tickets).padEnd(5)} ${f1(i.signMs).padStart(7)}  ${f1(i.sealMs).padStart(7)}  ${f1(i.loadMs).padStart(7)}  ${i.ticketsPerSecond.toFixed(0).padStart(9)}  ${f1(i.cryptoFloorMs).padStart(8)}  ${i.ratio.toFixed(2).padStart(5)}  ${i.nvmBytesPerTicket.toFixed(0).padStart(6)}`);
  }
  log('\nCard farm (opened clones of one personalised card, one process)');
  for (const f of result.farm) {
    log(`${f.mode}/${f.suite}: ${f.cards} cards of ${f.imageBytes} image bytes: ${f.bytesPerCard.toFixed(0)} bytes per card at rest, ${f.bytesPerCardAfterTaps.toFixed(0)} after taps; ${f.tps.toFixed(0)} taps/s over ${f.transactions} taps`);
  }
  log('\nPrimitives (median / p99 ms)');
  for (const [suite, figs] of Object.entries(result.primitives)) {
    log(`${suite}: ${Object.entries(figs).map(([k, v]) => `${k} ${f1(v.medianMs)}/${f1(v.p99Ms)}`).join(', ')}`);
  }
  log('\nBack office: bookings through the HTTP API, 50 concurrent signed clients until sold out');
  log('engine    bookings  sold-out  bookings/s  median ms  p99 ms');
  for (const b of result.backoffice.bookings ?? []) log(`${b.engine.padEnd(9)} ${String(b.bookings).padStart(8)}  ${String(b.soldOutRefusals).padStart(8)}  ${b.bookingsPerSecond.toFixed(0).padStart(10)}  ${f1(b.medianMs).padStart(9)}  ${f1(b.p99Ms).padStart(6)}`);
  log('Back office: issuance through the store (record TID, TF_V, seal and bill; LOAD; mark loaded)');
  log('engine    tickets  tickets/s  median ms  p99 ms');
  for (const i of result.backoffice.issuance ?? []) log(`${i.engine.padEnd(9)} ${String(i.tickets).padStart(7)}  ${i.ticketsPerSecond.toFixed(0).padStart(9)}  ${f1(i.medianMs).padStart(9)}  ${f1(i.p99Ms).padStart(6)}`);
  if (result.backoffice.postgres?.skipped) log(`PostgreSQL: skipped: ${result.backoffice.postgres.skipped}`);
  const ci = result.cliIssuance;
  if (ci) {
    log(`\nCLI batch issuance: \`eticket issue --card card.img --from batch.csv\` (compiled CLI, card image, embedded store), ${ci.rows} rows,`);
    log(`${ci.runs.length} batch(es) onto cards of their own: ${ci.runs.map((r) => `${r.commandSeconds.toFixed(2)} s (${r.ratioCommand.toFixed(2)})`).join(', ')}; the median batch below`);
    log(`load average ${ci.loadAverage.before.map((l) => l.toFixed(1)).join(' ')} before, ${ci.loadAverage.after.map((l) => l.toFixed(1)).join(' ')} after`);
    log('                                  tickets/s  ms/ticket  ratio to floor');
    log(`whole command (start-up included) ${ci.commandTicketsPerSecond.toFixed(0).padStart(9)}  ${f1((ci.commandSeconds * 1000) / ci.rows).padStart(9)}  ${ci.ratioCommand.toFixed(2).padStart(6)}`);
    log(`rows (first result to last)       ${ci.rowsTicketsPerSecond.toFixed(0).padStart(9)}  ${f1(1000 / ci.rowsTicketsPerSecond).padStart(9)}  ${ci.ratioRows.toFixed(2).padStart(6)}`);
    log(`crypto floor (same run, same keys)${ci.floorTicketsPerSecond.toFixed(0).padStart(9)}  ${f1(ci.cryptoFloorMs).padStart(9)}    1.00`);
    if (ci.commandCpuSeconds !== null && ci.ratioCommandCpu !== null) {
      log(`CPU time: command ${f1((ci.commandCpuSeconds * 1000) / ci.rows)} ms per ticket, floor ${f1(ci.cryptoFloorCpuMs)} ms: ratio ${ci.ratioCommandCpu.toFixed(2)} (no waits for a core or the disk counted)`);
    }
    log(`card image ${ci.imageBytesPerTicket.toFixed(0)} bytes per ticket; command ${ci.commandSeconds.toFixed(1)} s`);
  }
  const sim = result.simulation;
  if (sim && !('skipped' in sim)) {
    log(`\nMetro simulation (${sim.engine}, ${sim.cards} cards, ${sim.gates} gates on 2 worker threads, ${sim.runS.toFixed(0)} s)`);
    log(`taps at the gates ${sim.gateTapsPerS.toFixed(0)}/s, stored ${sim.ingestPerS.toFixed(0)}/s, end to end ${sim.endToEndPerS.toFixed(0)}/s; lag max ${f1(sim.lagMaxS)} s (first half ${f1(sim.firstHalfLagMaxS)} s, second half ${f1(sim.secondHalfLagMaxS)} s); tap p99 ${f1(sim.tapLatencyP99Ms)} ms`);
    log(`anomalies: ${sim.injected} injected, ${sim.anomaliesFound} found, ${sim.missed} missed, ${sim.falsePositives} false positive(s); ${sim.imageBytesPerCard.toFixed(0)} B image + ${sim.heapBytesPerCard.toFixed(0)} B heap per card`);
  } else if (sim) log(`\nMetro simulation: skipped: ${sim.skipped}`);
  log(`\nPC/SC: ${result.pcsc.skipped ? `skipped: ${result.pcsc.skipped}` : JSON.stringify(result.pcsc.results)}`);
  if (result.previous) {
    log(`\nAgainst the previous results table (bench/previous.json, ${result.previous.date})`);
    for (const c of result.previous.comparisons) log(`${c.what.padEnd(36)} ${f1(c.previous).padStart(9)} → ${f1(c.now).padStart(9)}  (× ${c.ratio.toFixed(2)})`);
  }
  log('\nGoals');
  for (const [k, g] of Object.entries(result.goals)) log(`${g.met ? 'met    ' : 'NOT met'} ${k}: ${g.value === null ? 'n/a' : f1(g.value)} (target ${g.target})`);
  log(`\n${result.seconds.toFixed(0)} s`);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
