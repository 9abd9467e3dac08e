// A stateful APDU fuzzer: honest issuers and gates drive a card through its life (personalisation, issuance,
// pki and sym taps, deletion); before each honest command, mutants of it are sent to forks of the card in the
// state that accepts the original, and every answer is checked against the spec (issue 10).
//
// Checked for every mutant (and every honest command):
// - the card answers (never throws), with at least a status word; never 6F00 (an internal error);
// - the status word is one apdu-spec lists for the command named by the mutant's header (or for all commands);
// - after a refusal (anything but 9000 / 61XX) the NVM image is byte-identical to before;
// - no answer carries a window of the card's secrets (private keys, diversified and privacy keys);
// - an altered LOAD / WRITE USAGE / DELETE that the card accepts has exactly the original's effect on NVM
//   (these commands are authenticated: a mutant may only differ in what the signature does not need to cover).

import { randomBytes } from 'node:crypto';
import { EticketCard } from '../card/applet.js';
import { MemoryBackend } from '../card/nvm.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { personalizeCard } from '../host/personalize.js';
import type { CheckingTerminal } from '../host/checking.js';
import { hex } from '../sdk/bytes.js';
import type { Icc } from '../sdk/icc.js';
import { toServiceDate } from '../sdk/fields.js';
import { commandForIns, protocol, swAllowedFor, type SuiteName } from '../sdk/spec.js';
import { World } from './world.js';

export interface FuzzOptions {
  suite: SuiteName;
  /** Stop after this many APDUs (mutants and honest commands) have been sent. */
  apdus: number;
  /** Mutants sent before each honest command (default 24). */
  mutantsPerCommand?: number;
  /** Seed of the mutation choices (the card's and terminals' own randomness stays random). */
  seed?: number;
  /** Tickets issued per card before a fresh card is personalised (default 12). */
  cyclesPerCard?: number;
  /** Called about every `progressEvery` APDUs (default 10,000). */
  onProgress?: (p: FuzzProgress) => void;
  progressEvery?: number;
  /** Keep at most this many violations in the report (all are counted). Default 50. */
  keepViolations?: number;
  /** Stop at the first violation (tests). */
  stopOnViolation?: boolean;
  /** Replace the emulated card (self-tests give a defective one to prove the checks fire). */
  wrapCard?: (card: EticketCard) => FuzzTarget;
  /** Reuse a world (its key generation is slow); a fresh one otherwise. */
  world?: World;
}

/** What the fuzzer drives: an Icc whose condition it can copy and whose NVM image and secrets it can see. */
export interface FuzzTarget extends Icc {
  fork(): FuzzTarget;
  readonly image: Uint8Array;
  /** Secret bytes the card holds (none of them may ever appear in an answer). */
  secrets(): Uint8Array[];
  /** Public bytes the card holds (windows of secrets that also occur here are not secret). */
  publics(): Uint8Array[];
}

export type ViolationKind = 'threw' | 'no-status-word' | 'internal-error' | 'unlisted-status-word' | 'image-changed-on-refusal' | 'secret-in-answer' | 'altered-command-accepted' | 'honest-session-failed';

export interface FuzzViolation {
  kind: ViolationKind;
  /** The honest command the mutant was derived from, and the card's phase. */
  original: string;
  phase: string;
  mutation: string;
  apdu: string;
  response: string;
  detail: string;
}

export interface FuzzProgress {
  apdus: number;
  mutants: number;
  honest: number;
  violations: number;
  seconds: number;
  rate: number;
}

export interface FuzzReport extends FuzzProgress {
  suite: SuiteName;
  seed: number;
  cards: number;
  cycles: number;
  /** Answers to mutants by status word (hex), over all commands. */
  statusWords: Record<string, number>;
  /** Mutants by mutation operator. */
  mutations: Record<string, number>;
  /** Mutants refused, by the honest command they came from. */
  refusedByCommand: Record<string, number>;
  /** Mutants accepted (9000 / 61XX), by the honest command they came from. */
  acceptedByCommand: Record<string, number>;
  violationList: FuzzViolation[];
}

/** The emulated applet as a fuzz target. */
export function emulatedTarget(card: EticketCard): FuzzTarget {
  return {
    atr: () => card.atr(),
    powerOn: () => card.powerOn(),
    powerOff: () => card.powerOff(),
    reset: () => card.reset(),
    transmit: (c) => card.transmit(c),
    fork: () => emulatedTarget(card.fork()),
    get image() {
      return card.image;
    },
    secrets: () => {
      const s = card.persistent;
      const out: Uint8Array[] = [];
      if (s.encKey) out.push(s.encKey.privateKey);
      if (s.signKey) out.push(s.signKey.privateKey);
      for (const k of s.symKeys) {
        out.push(k.key);
        if (k.privacyKey) out.push(k.privacyKey);
      }
      return out;
    },
    publics: () => {
      const s = card.persistent;
      return [s.encKey?.publicKey, s.signKey?.publicKey, s.encCert, s.signCert, s.serial].filter((x): x is Uint8Array => !!x);
    },
  };
}

/** A small, fast, seeded PRNG (mulberry32): mutation choices are reproducible from the report's seed. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// --- a tolerant BER-TLV view of command data, for structure-aware mutations -------------------------------------

interface Node {
  tag: Uint8Array;
  constructed: boolean;
  value: Uint8Array;
  children?: Node[];
}

function parseNodes(data: Uint8Array, depth = 0): Node[] | null {
  const out: Node[] = [];
  let i = 0;
  while (i < data.length) {
    const t0 = i;
    if ((data[i++] & 0x1f) === 0x1f) {
      while (i < data.length && data[i] & 0x80) i++;
      i++;
    }
    if (i > data.length) return null;
    const tag = data.subarray(t0, i);
    if (i >= data.length) return null;
    let len = data[i++];
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 3 || i + n > data.length) return null;
      len = 0;
      for (let k = 0; k < n; k++) len = (len << 8) | data[i++];
    }
    if (i + len > data.length) return null;
    const value = data.subarray(i, i + len);
    i += len;
    const constructed = (tag[0] & 0x20) !== 0;
    const node: Node = { tag, constructed, value };
    if (constructed && depth < 4) {
      const kids = parseNodes(value, depth + 1);
      if (kids) node.children = kids;
    }
    out.push(node);
  }
  return out;
}

function encodeLength(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0x81, n];
  if (n < 0x10000) return [0x82, n >> 8, n & 0xff];
  return [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
}

function encodeNodes(nodes: Node[]): Uint8Array {
  const parts: number[] = [];
  for (const n of nodes) {
    const value = n.children ? encodeNodes(n.children) : n.value;
    parts.push(...n.tag, ...encodeLength(value.length), ...value);
  }
  return new Uint8Array(parts);
}

/** Every list of sibling nodes in the tree (the top level and each template's children). */
function siblingLists(nodes: Node[], out: Node[][] = []): Node[][] {
  out.push(nodes);
  for (const n of nodes) if (n.children) siblingLists(n.children, out);
  return out;
}

// --- APDU structure ------------------------------------------------------------------------------------------------

interface Parts {
  header: Uint8Array;
  data: Uint8Array;
  /** Le as its encoded value (short: 0..255, extended: 0..65535), or null if absent. */
  le: number | null;
  extended: boolean;
}

function split(apdu: Uint8Array): Parts | null {
  if (apdu.length < 4) return null;
  const header = apdu.subarray(0, 4);
  const b = apdu.subarray(4);
  const none = new Uint8Array(0);
  if (b.length === 0) return { header, data: none, le: null, extended: false };
  if (b.length === 1) return { header, data: none, le: b[0], extended: false };
  if (b[0] !== 0) {
    const lc = b[0];
    if (b.length === 1 + lc) return { header, data: b.subarray(1), le: null, extended: false };
    if (b.length === 2 + lc) return { header, data: b.subarray(1, 1 + lc), le: b[1 + lc], extended: false };
    return null;
  }
  if (b.length === 3) return { header, data: none, le: (b[1] << 8) | b[2], extended: true };
  const lc = (b[1] << 8) | b[2];
  if (b.length === 3 + lc) return { header, data: b.subarray(3), le: null, extended: true };
  if (b.length === 5 + lc) return { header, data: b.subarray(3, 3 + lc), le: (b[3 + lc] << 8) | b[4 + lc], extended: true };
  return null;
}

/** Encode header, data and Le again (ISO 7816-4 short or extended form). */
function join(p: Parts): Uint8Array {
  const out: number[] = [...p.header];
  const extended = p.extended || p.data.length > 255;
  if (p.data.length) out.push(...(extended ? [0, p.data.length >> 8, p.data.length & 0xff] : [p.data.length]), ...p.data);
  if (p.le !== null) {
    if (!extended) out.push(p.le & 0xff);
    else if (p.data.length) out.push((p.le >> 8) & 0xff, p.le & 0xff);
    else out.push(0, (p.le >> 8) & 0xff, p.le & 0xff);
  }
  return new Uint8Array(out);
}

const KNOWN_CLA = [0x00, 0x80, 0x10, 0x90, 0x84, 0x01, 0x0c, 0xff, 0x40];
const KNOWN_INS = [...new Set(protocol.commands.map((c) => parseInt(c.ins, 16)))];
const KNOWN_P = [...new Set(protocol.commands.flatMap((c) => [...c.p1, ...c.p2].map((p) => parseInt(p, 16))))];
/** Commands whose data the card authenticates: an accepted alteration must not change what they do. */
const AUTHENTICATED = new Set(['LOAD', 'WRITE USAGE', 'DELETE']);

type Mutator = (apdu: Uint8Array, rng: Rng, ctx: { previous: Uint8Array[] }) => Uint8Array | null;

const MUTATORS: Record<string, Mutator> = {
  'bit-flip': (a, rng) => {
    const m = a.slice();
    const i = rng.int(m.length);
    m[i] ^= 1 << rng.int(8);
    return m;
  },
  'byte-set': (a, rng) => {
    const m = a.slice();
    m[rng.int(m.length)] = rng.pick([0x00, 0xff, 0x80, 0x7f, rng.int(256)]);
    return m;
  },
  'data-byte': (a, rng) => {
    const p = split(a);
    if (!p || !p.data.length) return null;
    const data = p.data.slice();
    data[rng.int(data.length)] ^= 1 + rng.int(255);
    return join({ ...p, data });
  },
  truncate: (a, rng) => a.subarray(0, rng.int(a.length)),
  extend: (a, rng) => new Uint8Array([...a, ...rng.bytes(1 + rng.int(4))]),
  cla: (a, rng) => new Uint8Array([rng.pick(KNOWN_CLA), ...a.subarray(1)]),
  ins: (a, rng) => (a.length < 2 ? null : new Uint8Array([a[0], rng.pick(KNOWN_INS), ...a.subarray(2)])),
  p1p2: (a, rng) => {
    if (a.length < 4) return null;
    const m = a.slice();
    m[2 + rng.int(2)] = rng.next() < 0.7 ? rng.pick(KNOWN_P) : rng.int(256);
    return m;
  },
  le: (a, rng) => {
    const p = split(a);
    if (!p) return null;
    const choice = rng.int(4);
    const le = choice === 0 ? null : choice === 1 ? 1 + rng.int(255) : choice === 2 ? 0 : rng.int(65536);
    return join({ ...p, le, extended: choice === 3 || p.extended });
  },
  lc: (a, rng) => {
    // An Lc that disagrees with the data actually sent.
    if (a.length < 5) return null;
    const m = a.slice();
    m[4] = rng.int(256);
    return m;
  },
  'tlv-drop': (a, rng) => tlvEdit(a, rng, (list, i) => list.splice(i, 1)),
  'tlv-duplicate': (a, rng) => tlvEdit(a, rng, (list, i) => list.splice(i, 0, list[i])),
  'tlv-swap': (a, rng) =>
    tlvEdit(a, rng, (list, i) => {
      if (list.length < 2) return false;
      const j = (i + 1) % list.length;
      [list[i], list[j]] = [list[j], list[i]];
    }),
  'tlv-value': (a, rng) =>
    tlvEdit(a, rng, (list, i) => {
      const n = list[i];
      if (n.children) return false;
      const v = n.value.slice();
      const op = rng.int(4);
      if (op === 0 && v.length) v[rng.int(v.length)] ^= 1 + rng.int(255);
      else if (op === 1) list[i] = { ...n, value: v.subarray(0, rng.int(v.length + 1)) };
      else if (op === 2) list[i] = { ...n, value: new Uint8Array([...v, ...rng.bytes(1 + rng.int(8))]) };
      else list[i] = { ...n, value: rng.bytes(v.length) };
      if (op === 0) list[i] = { ...n, value: v };
    }),
  'tlv-tag': (a, rng) =>
    tlvEdit(a, rng, (list, i) => {
      const tag = list[i].tag.slice();
      tag[tag.length - 1] ^= 1 << rng.int(5);
      list[i] = { ...list[i], tag };
    }),
  'tlv-long-length': (a) => {
    // Same fields, every length in a longer (still valid BER) form: a card must not accept a different meaning.
    const p = split(a);
    const nodes = p && p.data.length ? parseNodes(p.data) : null;
    if (!p || !nodes) return null;
    const long = (ns: Node[]): Uint8Array => {
      const out: number[] = [];
      for (const n of ns) {
        const v = n.children ? long(n.children) : n.value;
        out.push(...n.tag, 0x82, v.length >> 8, v.length & 0xff, ...v);
      }
      return new Uint8Array(out);
    };
    return join({ ...p, data: long(nodes) });
  },
  replay: (_a, rng, ctx) => (ctx.previous.length ? rng.pick(ctx.previous) : null),
  splice: (a, rng, ctx) => {
    const p = split(a);
    const donor = ctx.previous.length ? split(rng.pick(ctx.previous)) : null;
    if (!p || !donor || !donor.data.length) return null;
    return join({ ...p, data: donor.data });
  },
};

function tlvEdit(a: Uint8Array, rng: Rng, edit: (list: Node[], i: number) => unknown): Uint8Array | null {
  const p = split(a);
  if (!p || !p.data.length) return null;
  const nodes = parseNodes(p.data);
  if (!nodes || !nodes.length) return null;
  const lists = siblingLists(nodes).filter((l) => l.length);
  const list = rng.pick(lists);
  if (edit(list, rng.int(list.length)) === false) return null;
  return join({ ...p, data: encodeNodes(nodes) });
}

const MUTATOR_NAMES = Object.keys(MUTATORS);

function sw(r: Uint8Array): number {
  return (r[r.length - 2] << 8) | r[r.length - 1];
}

function accepted(s: number): boolean {
  return s === 0x9000 || s >> 8 === 0x61;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

const WINDOW = 12;

/** The card's secrets as a set of byte windows that occur in no public object of the card. */
function secretWindows(target: FuzzTarget): Set<string> {
  const pub = new Set<string>();
  for (const p of target.publics()) for (let i = 0; i + WINDOW <= p.length; i++) pub.add(Buffer.from(p.subarray(i, i + WINDOW)).toString('latin1'));
  const out = new Set<string>();
  for (const s of target.secrets()) {
    for (let i = 0; i + WINDOW <= s.length; i++) {
      const w = Buffer.from(s.subarray(i, i + WINDOW)).toString('latin1');
      // Runs of one byte value (ASN.1 padding, zero high bytes) are not secret material.
      if (!pub.has(w) && new Set(w).size > 2) out.add(w);
    }
  }
  return out;
}

function leaksSecret(resp: Uint8Array, windows: Set<string>): boolean {
  if (!windows.size || resp.length < WINDOW + 2) return false;
  const s = Buffer.from(resp.buffer, resp.byteOffset, resp.length - 2).toString('latin1');
  for (let i = 0; i + WINDOW <= s.length; i++) if (windows.has(s.slice(i, i + WINDOW))) return true;
  return false;
}

/** Run a fuzzing campaign. Violations are reported, never thrown. */
export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? randomBytes(4).readUInt32BE(0);
  const rng = new Rng(seed);
  const perCommand = options.mutantsPerCommand ?? 24;
  const keep = options.keepViolations ?? 50;
  const progressEvery = options.progressEvery ?? 10_000;
  const started = process.hrtime.bigint();
  const report: FuzzReport = {
    suite: options.suite,
    seed,
    apdus: 0,
    mutants: 0,
    honest: 0,
    violations: 0,
    seconds: 0,
    rate: 0,
    cards: 0,
    cycles: 0,
    statusWords: {},
    mutations: {},
    refusedByCommand: {},
    acceptedByCommand: {},
    violationList: [],
  };
  let nextProgress = progressEvery;
  const progress = (): FuzzProgress => {
    report.seconds = Number(process.hrtime.bigint() - started) / 1e9;
    report.rate = report.seconds > 0 ? report.apdus / report.seconds : 0;
    return { apdus: report.apdus, mutants: report.mutants, honest: report.honest, violations: report.violations, seconds: report.seconds, rate: report.rate };
  };
  const done = () => report.apdus >= options.apdus || (options.stopOnViolation === true && report.violations > 0);

  const world = options.world ?? World.create(options.suite);
  let phase = 'personalisation';
  let windows = new Set<string>();
  const previous: Uint8Array[] = [];

  const violation = (v: Omit<FuzzViolation, 'phase'>): void => {
    report.violations++;
    if (report.violationList.length < keep) report.violationList.push({ ...v, phase });
  };

  /** The answer checks every command gets, mutant or honest. */
  const checkAnswer = (sent: Uint8Array, r: Uint8Array | Error, original: string, mutation: string): number | null => {
    const base = { original, mutation, apdu: hex(sent) };
    if (r instanceof Error) {
      violation({ ...base, kind: 'threw', response: '', detail: r.message });
      return null;
    }
    if (r.length < 2) {
      violation({ ...base, kind: 'no-status-word', response: hex(r), detail: `${r.length}-byte answer` });
      return null;
    }
    const s = sw(r);
    const def = sent.length >= 2 ? commandForIns(sent[0] & 0xef, sent[1]) : undefined;
    if (s === 0x6f00) violation({ ...base, kind: 'internal-error', response: hex(r), detail: 'the card reported an internal error (6F00)' });
    else if (!swAllowedFor(def, s)) violation({ ...base, kind: 'unlisted-status-word', response: hex(r), detail: `${s.toString(16)} is not listed for ${def?.name ?? 'an unknown command'}` });
    if (leaksSecret(r, windows)) violation({ ...base, kind: 'secret-in-answer', response: hex(r), detail: 'the answer carries bytes of a card secret' });
    return s;
  };

  const send = (card: FuzzTarget, apdu: Uint8Array): Uint8Array | Error => {
    try {
      return card.transmit(apdu);
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  };

  /** Before `original` reaches `card`, its mutants go to forks of `card` in the same condition. */
  const mutate = (card: FuzzTarget, original: Uint8Array): void => {
    const def = original.length >= 2 ? commandForIns(original[0] & 0xef, original[1]) : undefined;
    const name = def?.name ?? hex(original.subarray(0, 2));
    // GENERATE KEY mutants that are accepted would each generate a key (RSA: about 100 ms); a few suffice.
    const count = name === 'GENERATE KEY' ? Math.min(4, perCommand) : perCommand;
    const before = card.image;
    let originalEffect: Uint8Array | undefined;
    const isLastOfChain = (original[0] & 0x10) === 0;
    for (let k = 0; k < count && !done(); k++) {
      const op = rng.pick(MUTATOR_NAMES);
      const m = MUTATORS[op](original, rng, { previous });
      if (!m || equalBytes(m, original)) continue;
      // A mutant that would be a GENERATE KEY (a changed INS) is skipped for the same reason.
      if (m.length >= 2 && m[1] === 0x46 && name !== 'GENERATE KEY') continue;
      const fork = card.fork();
      const r = send(fork, m);
      report.apdus++;
      report.mutants++;
      report.mutations[op] = (report.mutations[op] ?? 0) + 1;
      const s = checkAnswer(m, r, name, op);
      if (s === null) continue;
      const key = s.toString(16).padStart(4, '0');
      report.statusWords[key] = (report.statusWords[key] ?? 0) + 1;
      if (!accepted(s)) {
        report.refusedByCommand[name] = (report.refusedByCommand[name] ?? 0) + 1;
        if (!equalBytes(fork.image, before)) violation({ kind: 'image-changed-on-refusal', original: name, mutation: op, apdu: hex(m), response: hex(r as Uint8Array), detail: `refused with ${key} but NVM changed` });
        continue;
      }
      report.acceptedByCommand[name] = (report.acceptedByCommand[name] ?? 0) + 1;
      if (AUTHENTICATED.has(name) && isLastOfChain && !equalBytes(fork.image, before)) {
        if (!originalEffect) {
          const twin = card.fork();
          twin.transmit(original);
          originalEffect = twin.image;
        }
        if (!equalBytes(fork.image, originalEffect)) {
          violation({ kind: 'altered-command-accepted', original: name, mutation: op, apdu: hex(m), response: hex(r as Uint8Array), detail: `an altered ${name} was accepted (${key}) with another effect than the original's` });
        }
      }
    }
  };

  /** An Icc between the terminals and the card: each honest command is fuzzed, then sent and checked. */
  let current: FuzzTarget;
  const icc: Icc = {
    atr: () => current.atr(),
    powerOn: () => current.powerOn(),
    powerOff: () => current.powerOff(),
    reset: () => current.reset(),
    transmit: (apdu) => {
      if (!done()) mutate(current, apdu);
      const r = send(current, apdu);
      report.apdus++;
      report.honest++;
      const def = apdu.length >= 2 ? commandForIns(apdu[0] & 0xef, apdu[1]) : undefined;
      checkAnswer(apdu, r, def?.name ?? '?', 'honest');
      previous.push(apdu.slice());
      if (previous.length > 64) previous.shift();
      if (report.apdus >= nextProgress) {
        nextProgress += progressEvery;
        options.onProgress?.(progress());
      }
      if (r instanceof Error) throw r;
      return r;
    },
  };

  const cyclesPerCard = options.cyclesPerCard ?? 12;
  let ticketNo = 0;
  const lifeOfACard = async (): Promise<void> => {
    // A fresh card, personalised through the fuzzing Icc: personalisation commands are fuzzed too.
    phase = 'personalisation';
    const raw = EticketCard.create(new MemoryBackend(), { suite: options.suite });
    current = options.wrapCard ? options.wrapCard(raw) : emulatedTarget(raw);
    windows = secretWindows(current);
    report.cards++;
    const session = new CardSession(new EmulatorTransport(icc));
    const credentials = await personalizeCard(session, {
      ca: world.keys.ca,
      kgc: world.keys.kgc,
      authorities: [world.authorityGrant()],
      terminals: [world.terminalGrant()],
      masterKeys: [world.masterKey],
    });
    windows = secretWindows(current);
    const issuing = world.issuingTerminal(session);
    const pki = world.checkingTerminal(session, { mode: 'pki' });
    const sym = world.checkingTerminal(session, { mode: 'sym' });
    const date = toServiceDate(new Date(world.now * 1000));
    for (let cycle = 0; cycle < cyclesPerCard && !done(); cycle++) {
      report.cycles++;
      phase = 'issuance';
      await issuing.open();
      const face = world.ticketServer.createTicket({ serviceDate: date, train: `F${cycle % 3}`, origin: 'BJS', destination: 'SHH', seat: `${++ticketNo}A` });
      await issuing.load(world.authority.issue(face, credentials).sealed);
      await issuing.capacity();
      const gate: CheckingTerminal = cycle % 2 === 0 ? pki : sym;
      phase = cycle % 2 === 0 ? 'gate pki' : 'gate sym';
      await gate.select();
      await gate.passGate('entry', { train: face.train, auditVerificationCode: cycle % 4 === 0 });
      await gate.passGate('exit', { train: face.train });
      await gate.readTickets({ date });
      phase = 'deletion';
      await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }));
      // A query for a ticket that is gone and one that never was: the void and no-match views.
      await gate.verifyTicket({ tid: face.tid }).catch(() => undefined);
      await gate.verifyTicket({ tid: `NONE${ticketNo}` }).catch(() => undefined);
    }
  };
  while (!done()) {
    try {
      await lifeOfACard();
    } catch (e) {
      // The honest terminals failed on the card itself (the mutants went to forks): that is a finding too.
      violation({ kind: 'honest-session-failed', original: '-', mutation: 'honest', apdu: hex(previous.at(-1) ?? new Uint8Array(0)), response: '', detail: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
  options.onProgress?.(progress());
  return report;
}
