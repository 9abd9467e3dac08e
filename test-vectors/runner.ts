// Runs conformance vector files against a card: static APDUs as they are, template steps (seal-ticket,
// signed-command, certify, install, verify, maced-command, fill, authenticate, get-response, preset) filled in with
// the TEST ONLY keys for the card at hand.

import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { encodeCommand, parseResponse, swHex } from '../sdk/apdu.js';
import { concat, equal, fromHex, fromUtf8, hex } from '../sdk/bytes.js';
import { decodeLoadAnswer } from '../sdk/commands/load.js';
import { encodeIssuerAuthorization, issuerAuthorizationMessage } from '../sdk/commands/external-authenticate.js';
import { encodeIdentity, PUT_DATA_P2 } from '../sdk/commands/put-data.js';
import { encodeDiversifiedKey, encodePrivateKey, PUT_KEY_P1 } from '../sdk/commands/put-key.js';
import { parseFci, SELECT_P2 } from '../sdk/commands/select.js';
import { getResponseApdu } from '../sdk/commands/get-response.js';
import { decodeTicketView, viewLengthFor, type DecodedTicketView } from '../sdk/commands/ticket-view.js';
import { encodeUsageCommand, encodeUsageBody, USAGE_P1, usageCommandMac, usageFieldItems, usageSignatureMessage, type GateMode, type UsageCommandFields } from '../sdk/commands/usage-command.js';
import { decodeSessionView, encodeVerifyQuery, sessionViewMac, verifyP1 } from '../sdk/commands/verify.js';
import { sha256 } from '../sdk/crypto/suite.js';
import { cmac, deriveKey } from '../sdk/crypto/aes.js';
import { open, sealWithKey } from '../sdk/crypto/envelope.js';
import { rsaPublicKey } from '../sdk/crypto/rsa.js';
import { sm9EncryptionPublicKey, sm9SigningPublicKey } from '../sdk/crypto/sm9-suite.js';
import { diversify, privacyKey, sessionDecrypt, sessionKeys, unmaskSerial } from '../sdk/crypto/symmetric.js';
import { decodeKeyCertificate, keyCertificateBody, signKeyCertificate } from '../sdk/roles/key-certificate.js';
import { cardIdentity } from '../sdk/roles/kgc.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { verifyCardCertificate } from '../sdk/roles/ca.js';
import { checkReceiptMac, parseReceipt, receiptAnswers, receiptMessage } from '../sdk/receipt.js';
import { AID, command as commandDef, commandForIns, describeSw, ENVELOPE_FIELD, LIMITS, SUITE, SW, T, USAGE_EVENT, type SuiteName } from '../sdk/spec.js';
import { decodeTicketFace, encodeTicketFace, encodeVerificationCode, faceDigestOf, verificationCodeMessage, type TicketFace, type VerificationCode } from '../sdk/ticket.js';
import { resolveSigningKey } from '../sdk/roles/key-chain.js';
import { decodeAll, TlvMap, template, tlv } from '../sdk/tlv.js';
import { TransportTimeoutError, TransportUnavailableError } from '../sdk/errors.js';
import { newCommandContext, type Transceive } from '../host/channel/channel.js';
import { channelStack } from '../host/channel/stack.js';
import type { TraceEntry } from '../host/channel/tracing.js';
import { DEFAULT_COMMAND_DEADLINE_MS } from '../host/session.js';
import type { Transport } from '../host/transport/transport.js';
import type { AuthMutation, CertifiedSigner, Check, CommandMutation, Expect, Fixture, LoadMutation, MacMutation, Step, TestCase, TestGroup, TicketFaceJson, VectorFile } from './format.js';
import { authority, loadTestKeys, masterKey, terminal, type TestKeys } from './testkeys.js';

/** A `preset` step: state set directly on an emulated image (fixture `presets`). */
export type Preset = { what: 'usage-counter'; tid: string; counter: number } | { what: 'ticket-table'; count: number };

/**
 * A card in the state a group's fixture asks for, or the reason this provider cannot make one. `preset` sets the
 * card's state directly (image providers only); the card is then powered up again, as after a reset.
 */
export type Acquired =
  | {
      transport: Transport;
      /** Give the card back when the group is done (disconnect, or delete the image). */
      release(): Promise<void>;
      /** Set the card's state directly (emulated images only; fixture `presets`). */
      preset?(p: Preset): Promise<void>;
    }
  | { skip: string };

/** Where cards come from: fresh images, one card in a reader, a vpcd child per group (tests). */
export interface CardProvider {
  readonly label: string;
  /**
   * Ticket ids and issue times stay as written (deterministic) only on fresh cards. A card that lives
   * across runs keeps tombstones, so the runner gives each run its own operator code and issue times.
   */
  readonly reusesCards: boolean;
  /** A card in the state `fixture` asks for, or the reason this provider cannot make one. */
  acquire(fixture: Fixture, keys: TestKeys, groupLabel: string): Promise<Acquired>;
  /** Release whatever the provider holds (image directories, readers). */
  close?(): Promise<void>;
}

/** Which vectors to run, where the TEST ONLY keys are, and a progress callback. */
export interface RunOptions {
  /** Run only tests carrying at least one of these flags. */
  flags?: string[];
  /** Skip tests carrying any of these flags. */
  excludeFlags?: string[];
  /** Run only these areas (file `area`). */
  areas?: string[];
  /** Called after each reported test, e.g. for progress lines. */
  onTest?: (outcome: TestOutcome) => void;
  /** The TEST ONLY keys directory (not in the npm package); default: $ETICKET_TEST_KEYS, else the repository's. */
  keysDir?: string;
}

/** One exchange of a vector, hex. */
export interface ApduLog {
  command: string;
  response: string;
}

/** The result of one vector, with every APDU it exchanged. */
export interface TestOutcome {
  file: string;
  suite: string;
  area: string;
  group: number;
  tcId: number;
  comment: string;
  flags: string[];
  result: TestCase['result'];
  status: 'pass' | 'fail' | 'skip';
  message?: string;
  ms: number;
  apdus: ApduLog[];
}

/** The results of a run: each vector's outcome and the counts. */
export interface RunReport {
  provider: string;
  outcomes: TestOutcome[];
  counts: { total: number; pass: number; fail: number; skip: number };
}

/** Read and structurally check one vector file (the JSON Schema says the same, for other tools). */
export function loadVectorFile(path: string): VectorFile {
  const f = JSON.parse(readFileSync(path, 'utf8')) as VectorFile;
  validateVectorFile(f, path);
  return f;
}

/**
 * Every vector file in `dir` (or the given paths), blank-card files first: on a single blank card in a
 * reader the personalisation vectors must run before anything personalises the card for the others.
 */
export function loadVectorFiles(paths: string[]): { path: string; file: VectorFile }[] {
  const files = paths.map((path) => ({ path, file: loadVectorFile(path) }));
  const blankFirst = (f: VectorFile) => (f.testGroups.some((g) => g.fixture.state === 'blank') ? 0 : 1);
  return files.sort((a, b) => blankFirst(a.file) - blankFirst(b.file) || a.path.localeCompare(b.path));
}

/** Check a vector file's structure; InvalidInputError naming what is wrong. */
export function validateVectorFile(f: VectorFile, where = 'vector file'): void {
  const fail = (why: string) => {
    throw new Error(`${where}: ${why}`);
  };
  if (f.type !== 'eticket-apdu-vectors') fail('type is not eticket-apdu-vectors');
  if (typeof f.suite !== 'string' || !Array.isArray(f.testGroups)) fail('suite or testGroups missing');
  const ids = new Set<number>();
  let n = 0;
  for (const g of f.testGroups) {
    if (!g.fixture || !['blank', 'personalized'].includes(g.fixture.state)) fail('group without a valid fixture');
    for (const t of g.tests) {
      n++;
      if (ids.has(t.tcId)) fail(`tcId ${t.tcId} is used twice`);
      ids.add(t.tcId);
      for (const flag of t.flags) if (!f.notes[flag]) fail(`tcId ${t.tcId}: flag ${flag} has no note`);
      if (!['valid', 'invalid', 'acceptable'].includes(t.result)) fail(`tcId ${t.tcId}: bad result`);
      for (const s of t.steps) {
        if ('ticket' in s && !g.tickets[s.ticket]) fail(`tcId ${t.tcId}: unknown ticket ${s.ticket}`);
        if ('expect' in s && (!Array.isArray(s.expect.sw) || s.expect.sw.length === 0)) fail(`tcId ${t.tcId}: step without expected status word`);
      }
    }
  }
  if (n !== f.numberOfTests) fail(`numberOfTests is ${f.numberOfTests}, the file holds ${n}`);
}

class StepFailure extends Error {}

/** The terminal side of a sym session (apdu-spec README 3.5), kept across the card's end of it on purpose. */
interface HostSession {
  rc: Uint8Array;
  macKey: Uint8Array;
  /** MAC of the VERIFY answer: the next command's MAC chains on it. */
  chain: Uint8Array;
  rt: Uint8Array;
  masterKey: string;
}

/** State the runner keeps while it plays one group on one card. */
class GroupContext {
  serial: Uint8Array = new Uint8Array(8);
  encCert?: Uint8Array;
  signCert?: Uint8Array;
  /** C7 of the last pki view: the next signed command's challenge. */
  challenge: Uint8Array | null = null;
  /** SHA-256 of the last pki view B2 (the next signed command's DF21). */
  viewDigest: Uint8Array = new Uint8Array(32);
  /** GET CHALLENGE's RC (EXTERNAL AUTHENTICATE). */
  issuerChallenge: Uint8Array | null = null;
  /** Data of an answer cut by a short Le (61XX): a get-response step completes it. */
  partial: Uint8Array = new Uint8Array(0);
  /** The whole answer the last get-response step completed (check same-answer). */
  lastWhole: Uint8Array = new Uint8Array(0);
  /** Answer lengths by sameLengthAs name, within one test. */
  lengths = new Map<string, number>();
  preset?: (p: Preset) => Promise<void>;
  spentChallenge?: Uint8Array;
  readonly counters = new Map<string, number>();
  readonly sealed = new Map<string, Uint8Array>();
  readonly faces = new Map<string, TicketFace>();
  lastSigned = new Map<string, Uint8Array>();
  lastCommandData: Uint8Array = new Uint8Array(0);
  /** Sym: the last session a VERIFY P1=02/03 opened, and the one before it (for `previous` mutations). */
  session: HostSession | null = null;
  previousSession?: HostSession;
  lastMaced = new Map<string, Uint8Array>();
  lastCommandMac: Uint8Array = new Uint8Array(0);
  fillers: string[] = [];
  log: ApduLog[] = [];
  readonly channels: { once: Transceive; collecting: Transceive; command: Transceive };

  constructor(
    readonly transport: Transport,
    readonly keys: TestKeys,
    readonly group: TestGroup,
    readonly run: RunIdentity,
  ) {
    this.channels = channels(transport, () => this.log);
  }

  /**
   * The face of a ticket as this run issues it to this card: version 2 faces name the card's serial (94);
   * operator and issue time vary per run on reused cards. `issuedAt` fixes the issue time (rotation vectors).
   */
  face(ref: string, json?: TicketFaceJson, issuedAt?: number): TicketFace {
    let f = this.faces.get(ref);
    if (!f) {
      const src = json ?? this.group.tickets[ref];
      if (!src) throw new StepFailure(`vector names ticket ${ref}, which the group does not define`);
      f = { ...(src as unknown as TicketFace) };
      if (f.version === 2 && f.card === undefined) f.card = this.serial;
      if (this.group.fixture.operatorBound) {
        if (this.run.tag) f.tid = `${f.tid}-${this.run.tag}`.slice(0, 32);
      } else if (this.run.operator && f.operator === this.keys.operator) f.operator = this.run.operator;
      if (this.run.issuedAtBase !== undefined) f.issuedAt = this.run.issuedAtBase + this.run.issued++;
      if (issuedAt !== undefined) f.issuedAt = issuedAt;
      this.faces.set(ref, f);
    }
    return f;
  }
}

/** Per-run substitutions on cards that outlive the run (see CardProvider.reusesCards). */
interface RunIdentity {
  /** Per-run tag: the operator code of ordinary groups, the TID suffix of operator-bound ones. */
  tag?: string;
  operator?: string;
  issuedAtBase?: number;
  issued: number;
}

function newRunIdentity(reuses: boolean): RunIdentity {
  if (!reuses) return { issued: 0 };
  // Milliseconds and a random part: two runs started in the same second (a loop, two CI jobs) still differ.
  const tag = (Date.now().toString(36) + randomBytes(2).toString('hex')).toUpperCase().slice(-10);
  return { tag, operator: `T${tag}`.slice(0, 16), issuedAtBase: Math.floor(Date.now() / 1000), issued: 0 };
}

/**
 * A reused card's tombstone floor (apdu-spec: tickets issued at or before it are refused, 9103) rises with the issue
 * times of earlier runs, which count one second per ticket and so run ahead of the clock. The card does not show its
 * floor: on an unexpected 9103 the run's issue times move up in doubling steps until a LOAD is accepted. A refused
 * LOAD leaves the card unchanged, so each probe costs one seal; issue times stay close above the floor (at most twice
 * the gap), never far in the future.
 */
const FLOOR_STEPS = 24;

async function loadAboveFloor(ctx: GroupContext, ref: string, seal: () => Promise<Uint8Array>, ne?: number): Promise<{ sealed: Uint8Array; r: { data: Uint8Array; sw: number } }> {
  let sealed = await seal();
  let r = await send(ctx, 'LOAD', sealed, undefined, undefined, ne);
  for (let step = 64, i = 0; r.sw === SW.TICKET_REPLAYED && ctx.run.issuedAtBase !== undefined && i < FLOOR_STEPS; step *= 2, i++) {
    ctx.run.issuedAtBase += step;
    ctx.faces.delete(ref);
    sealed = await seal();
    r = await send(ctx, 'LOAD', sealed, undefined, undefined, ne);
  }
  return { sealed, r };
}

/**
 * Run the vector files against cards from `provider`: each group on a card in its fixture state, templates filled in
 * with the TEST ONLY keys. The provider is closed whatever happens (a missing keys directory included).
 */
export async function runVectors(files: { path: string; file: VectorFile }[], provider: CardProvider, options: RunOptions = {}): Promise<RunReport> {
  try {
    return await runAll(files, provider, options);
  } finally {
    await provider.close?.();
  }
}

async function runAll(files: { path: string; file: VectorFile }[], provider: CardProvider, options: RunOptions): Promise<RunReport> {
  const outcomes: TestOutcome[] = [];
  const run = newRunIdentity(provider.reusesCards);
  const selected = (t: TestCase) =>
    (!options.flags?.length || t.flags.some((f) => options.flags!.includes(f))) && !t.flags.some((f) => options.excludeFlags?.includes(f));
  for (const { path, file } of files) {
    if (options.areas?.length && !options.areas.includes(file.area)) continue;
    const keys = loadTestKeys(file.suite as SuiteName, options.keysDir);
    for (const [gi, group] of file.testGroups.entries()) {
      const wanted = group.tests.filter(selected);
      if (wanted.length === 0) continue;
      const report = (t: TestCase, status: TestOutcome['status'], ms: number, message?: string, apdus: ApduLog[] = []) => {
        const o: TestOutcome = { file: path, suite: file.suite, area: file.area, group: gi, tcId: t.tcId, comment: t.comment, flags: t.flags, result: t.result, status, message, ms, apdus };
        outcomes.push(o);
        options.onTest?.(o);
      };
      const label = `${file.area} group ${gi}`;
      let acquired: Acquired;
      try {
        acquired = await provider.acquire(group.fixture, keys, label);
      } catch (e) {
        // A reader that does not answer, or no PC/SC service, fails every group alike, each after the full
        // timeout: stop the run (the CLI exits 3) instead of waiting that long once per group.
        if (e instanceof TransportTimeoutError || e instanceof TransportUnavailableError) throw e;
        for (const t of wanted) report(t, 'fail', 0, `no card for ${label}: ${(e as Error).message}`);
        continue;
      }
      if ('skip' in acquired) {
        for (const t of wanted) report(t, 'skip', 0, acquired.skip);
        continue;
      }
      const ctx = new GroupContext(acquired.transport, keys, group, run);
      ctx.preset = acquired.preset?.bind(acquired);
      try {
        await acquired.transport.connect();
        await learnCard(ctx);
        let broken: string | undefined;
        for (const t of group.tests) {
          const isWanted = selected(t);
          if (!isWanted && !group.fixture.sequential) continue;
          if (broken) {
            if (isWanted) report(t, 'fail', 0, broken);
            continue;
          }
          ctx.log = [];
          const t0 = performance.now();
          let message: string | undefined;
          try {
            await runTest(ctx, t);
          } catch (e) {
            if (!(e instanceof StepFailure)) broken = `card or transport failed during tcId ${t.tcId}: ${(e as Error).message}`;
            message = (e as Error).message;
          }
          if (isWanted) report(t, message ? 'fail' : 'pass', performance.now() - t0, message, ctx.log);
        }
      } finally {
        await acquired.release();
      }
    }
  }
  const count = (s: TestOutcome['status']) => outcomes.filter((o) => o.status === s).length;
  return { provider: provider.label, outcomes, counts: { total: outcomes.length, pass: count('pass'), fail: count('fail'), skip: count('skip') } };
}

/**
 * The card serial and certificates, which a locked card tells only an authenticated issuer: EXTERNAL AUTHENTICATE
 * with the test authority once per group (tests start with a reset, which ends it), the certificates kept.
 */
async function learnCard(ctx: GroupContext): Promise<void> {
  const r = await transmit(ctx, encodeCommand({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: SELECT_P2.FCI, data: AID, ne: 256 }), true);
  if (r.sw !== SW.SUCCESS) throw new Error(`SELECT answered ${swHex(r.sw)}: is this an eticket card?`);
  const fci = parseFci(r.data);
  if (fci.lifecycle === 'OPERATIONAL') {
    const a = await authenticateAs(ctx, {});
    if (a.sw !== SW.SUCCESS) throw new Error(`EXTERNAL AUTHENTICATE with the test authority answered ${swHex(a.sw)}: is this card personalised with the test profile?`);
  }
  ctx.serial = await getData(ctx, T.CARD_SERIAL);
  if (fci.lifecycle === 'OPERATIONAL' && ctx.keys.suite === 'rsa') {
    ctx.encCert = await getData(ctx, T.CARD_ENCRYPTION_CERTIFICATE);
    ctx.signCert = await getData(ctx, T.CARD_SIGNING_CERTIFICATE);
  }
}

async function runTest(ctx: GroupContext, t: TestCase): Promise<void> {
  await ctx.transport.reset();
  ctx.challenge = null;
  ctx.issuerChallenge = null;
  ctx.lengths.clear();
  ctx.session = null;
  ctx.previousSession = undefined;
  if (ctx.group.fixture.beforeEach === 'reset-select') {
    const r = await transmit(ctx, encodeCommand({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: SELECT_P2.NO_FCI, data: AID }), false);
    if (r.sw !== SW.SUCCESS) throw new StepFailure(`SELECT before the test answered ${swHex(r.sw)}`);
  }
  for (const [i, step] of t.steps.entries()) {
    try {
      await runStep(ctx, step);
    } catch (e) {
      if (e instanceof StepFailure) throw new StepFailure(`step ${i + 1} (${step.kind}${'name' in step && step.name ? ' ' + step.name : ''}): ${e.message}`);
      throw e;
    }
  }
}

// ---- exchanging APDUs ------------------------------------------------------------------------------

/** Every wire exchange of this group goes into the test's log. */
function channels(transport: Transport, log: () => ApduLog[]): GroupContext['channels'] {
  const base = { extended: transport.info.extendedLength, onExchange: (e: TraceEntry) => log().push({ command: hex(e.apdu), response: hex(e.response) }), shortGetResponse: true };
  return {
    once: channelStack(transport, { ...base, chain: false, collect: false, retryWrongLe: false }),
    collecting: channelStack(transport, { ...base, chain: false, retryWrongLe: false }),
    command: channelStack(transport, base),
  };
}

/** One APDU as given; with `collect`, 61XX is followed by GET RESPONSE until the card is done (host/channel). */
async function transmit(ctx: GroupContext, apdu: Uint8Array, collect: boolean): Promise<{ data: Uint8Array; sw: number }> {
  const channel = collect ? ctx.channels.collecting : ctx.channels.once;
  return parseResponse(await channel(apdu, newCommandContext(commandForIns(apdu[0], apdu[1])?.name ?? 'APDU', DEFAULT_COMMAND_DEADLINE_MS)));
}

/**
 * A command the runner built: extended length when the reader passes it (and the data need it), else ISO
 * chaining; then GET RESPONSE for 61XX and a retry with the exact Le for 6CXX (host/channel). With `shortNe`
 * the command goes out with that short Le and its 61XX answer is kept as is (ctx.partial), for get-response.
 */
async function send(ctx: GroupContext, name: string, data: Uint8Array, p1?: number, p2?: number, shortNe?: number): Promise<{ data: Uint8Array; sw: number }> {
  const def = commandDef(name);
  ctx.lastCommandData = data;
  const ne = shortNe ?? (/2|4/.test(def.case) ? (ctx.transport.info.extendedLength && data.length > 255 ? 65536 : 256) : undefined);
  const apdu = encodeCommand({ cla: def.claByte, ins: def.insByte, p1: p1 ?? parseInt(def.p1[0], 16), p2: p2 ?? parseInt(def.p2[0], 16), data, ne });
  if (shortNe !== undefined) {
    // Chaining still applies to long data; only the answer is left as the card gives it.
    const chained = channelStack(ctx.transport, { extended: ctx.transport.info.extendedLength, onExchange: (e: TraceEntry) => ctx.log.push({ command: hex(e.apdu), response: hex(e.response) }), collect: false, retryWrongLe: false });
    const r = parseResponse(await chained(apdu, newCommandContext(name, DEFAULT_COMMAND_DEADLINE_MS)));
    ctx.partial = r.data.slice();
    return r;
  }
  return parseResponse(await ctx.channels.command(apdu, newCommandContext(name, DEFAULT_COMMAND_DEADLINE_MS)));
}

function swMatches(expected: string[], sw: number): boolean {
  const h = swHex(sw);
  return expected.some((e) => e === h || (e.endsWith('XX') && e.slice(0, 2) === h.slice(0, 2)));
}

function expectSw(e: Expect, sw: number, what = ''): void {
  if (!swMatches(e.sw, sw)) {
    const d = describeSw(sw);
    throw new StepFailure(`${what}expected SW ${e.sw.join(' or ')}, card answered ${swHex(sw)} ${d.name}`);
  }
}

/** sameLengthAs: the first answer of a name sets the length, every later one must match it. */
function expectSameLength(ctx: GroupContext, e: Expect, length: number): void {
  if (!e.sameLengthAs) return;
  const seen = ctx.lengths.get(e.sameLengthAs);
  if (seen === undefined) ctx.lengths.set(e.sameLengthAs, length);
  else if (seen !== length) throw new StepFailure(`answer of ${length} bytes, but "${e.sameLengthAs}" answers have ${seen}: a reader without keys tells them apart`);
}

// ---- steps -----------------------------------------------------------------------------------------

async function runStep(ctx: GroupContext, step: Step): Promise<void> {
  switch (step.kind) {
    case 'reset':
      await ctx.transport.reset();
      ctx.challenge = null;
      ctx.issuerChallenge = null;
      return;
    case 'apdu': {
      const apdu = fromHex(step.command);
      // Fetch the rest of a long answer unless the vector is about 61XX itself.
      const collect = !step.expect.sw.some((s) => s.startsWith('61'));
      const r = await transmit(ctx, apdu, collect);
      expectSw(step.expect, r.sw);
      if (!collect) ctx.partial = r.data.slice();
      expectSameLength(ctx, step.expect, r.data.length);
      await checkData(ctx, step.expect, r.data, apdu);
      // GET CHALLENGE arms EXTERNAL AUTHENTICATE and ends any shown view or session.
      if (apdu[1] === 0x84) {
        ctx.challenge = null;
        if (r.sw === SW.SUCCESS && r.data.length === 8) ctx.issuerChallenge = r.data.slice();
      }
      return;
    }
    case 'get-response': {
      const r = await transmit(ctx, getResponseApdu(256), true);
      expectSw(step.expect, r.sw);
      ctx.lastWhole = concat(ctx.partial, r.data);
      ctx.partial = new Uint8Array(0);
      await checkData(ctx, step.expect, ctx.lastWhole);
      return;
    }
    case 'authenticate': {
      const r = await authenticateAs(ctx, step.mutation ?? {});
      expectSw(step.expect, r.sw);
      return;
    }
    case 'preset':
      return preset(ctx, step);
    case 'certify':
      return certify(ctx, step.expect);
    case 'load':
      return load(ctx, step);
    case 'signed-command':
      return signedCommand(ctx, step);
    case 'fill':
      return fill(ctx, step.until, step.expect);
    case 'install':
      return install(ctx, step);
    case 'verify':
      return verifyStep(ctx, step);
    case 'maced-command':
      return macedCommand(ctx, step);
  }
}

async function checkData(ctx: GroupContext, e: Expect, data: Uint8Array, apdu?: Uint8Array): Promise<void> {
  if (e.data !== undefined) {
    const want = fromHex(e.data);
    const mask = e.mask ? fromHex(e.mask) : undefined;
    const same = want.length === data.length && want.every((b, i) => (mask ? (b & mask[i]) === (data[i] & mask[i]) : b === data[i]));
    if (!same) throw new StepFailure(`expected data ${e.data}${mask ? ` (mask ${e.mask})` : ''}, card answered ${hex(data)}`);
  }
  if (e.length !== undefined && data.length !== e.length) throw new StepFailure(`expected ${e.length} bytes of data, card answered ${data.length}`);
  if (e.check) await runCheck(ctx, e.check, data, apdu);
}

async function getData(ctx: GroupContext, tag: number): Promise<Uint8Array> {
  const r = await send(ctx, 'GET DATA', new Uint8Array(0), 0x00, tag);
  if (r.sw !== SW.SUCCESS) throw new StepFailure(`GET DATA ${tag.toString(16).toUpperCase()} answered ${swHex(r.sw)}`);
  return r.data;
}

/** The card's certificates, read when the group started (learnCard: EXTERNAL AUTHENTICATE then GET DATA). */
async function encryptionKey(ctx: GroupContext): Promise<Uint8Array> {
  // SM9: the key follows from the serial and the KGC; RSA: from the certificate the card holds.
  if (ctx.keys.suite === 'rsa') ctx.encCert ??= await getData(ctx, T.CARD_ENCRYPTION_CERTIFICATE);
  return ctx.keys.cardTrust.encryptionKey({ suite: ctx.keys.suite, serial: ctx.serial, encryptionCertificate: ctx.encCert });
}

async function signingKey(ctx: GroupContext): Promise<Uint8Array> {
  if (ctx.keys.cardTrust.needsSigningCertificate) ctx.signCert ??= await getData(ctx, T.CARD_SIGNING_CERTIFICATE);
  return ctx.keys.cardTrust.signingKey({ suite: ctx.keys.suite, serial: ctx.serial, signingCertificate: ctx.signCert });
}

/**
 * A certificate (A4) of one of the profile's signing keys by one of its authorities, its window relative to
 * `at`; `tamper` moves its end one second after signing, `certifies` makes it name another key.
 */
function certificateFor(ctx: GroupContext, spec: CertifiedSigner, at: number, operator: string): { signer: { sign(m: Uint8Array): Uint8Array; publicKey: Uint8Array }; keyId: Uint8Array; certificate: Uint8Array } {
  const sk = ctx.keys.signingKeys.get(spec.key);
  if (!sk) throw new StepFailure(`the profile has no signing key ${spec.key}`);
  const root = authority(ctx.keys, spec.root ?? 'authority');
  const certified = spec.certifies ? ctx.keys.signingKeys.get(spec.certifies)! : sk;
  const cert = signKeyCertificate(root.key, { publicKey: certified.key.publicKey, scopes: spec.scopes ?? [operator], validFrom: at + (spec.from ?? -3600), validUntil: at + (spec.until ?? 3600) });
  let encoded = cert.encoded;
  if (spec.tamper) {
    const c = decodeKeyCertificate(encoded);
    encoded = tlv(T.KEY_CERTIFICATE, concat(keyCertificateBody({ ...c, validUntil: c.validUntil + 1 }), tlv(T.SIGNATURE, c.signature)));
  }
  return { signer: sk.key, keyId: sk.keyId, certificate: encoded };
}

/** GET CHALLENGE (unless the mutation says not to), then EXTERNAL AUTHENTICATE signed by the test authority (or the mutation's key). */
async function authenticateAs(ctx: GroupContext, m: AuthMutation): Promise<{ sw: number }> {
  if (!m.noChallenge) {
    const c = await transmit(ctx, encodeCommand({ cla: 0x00, ins: 0x84, p1: 0, p2: 0, ne: 8 }), false);
    if (c.sw !== SW.SUCCESS) return c;
    ctx.issuerChallenge = c.data.slice();
    ctx.challenge = null;
  }
  const rc = ctx.issuerChallenge ?? new Uint8Array(8);
  let keyId: Uint8Array;
  let signer: { sign(m: Uint8Array): Uint8Array };
  let certificate: Uint8Array | undefined;
  if (m.signer) {
    ({ signer, keyId, certificate } = certificateFor(ctx, m.signer, ctx.run.issuedAtBase ?? 1767225600, ctx.keys.operator));
  } else {
    const a = authority(ctx.keys, m.authority ?? 'authority');
    signer = a.key;
    keyId = a.keyId;
  }
  let signature = signer.sign(issuerAuthorizationMessage(rc));
  if (m.flipSignatureBit !== undefined) signature = flipBit(signature, m.flipSignatureBit);
  let data = encodeIssuerAuthorization({ keyId, certificate, signature });
  if (m.truncated) data = data.subarray(0, data.length - 1);
  ctx.issuerChallenge = null; // spent whatever the card answers
  return send(ctx, 'EXTERNAL AUTHENTICATE', data);
}

/** Set the card's state directly (emulated images only), then SELECT again: the card restarted. */
async function preset(ctx: GroupContext, step: Extract<Step, { kind: 'preset' }>): Promise<void> {
  if (!ctx.preset) throw new StepFailure('this card provider cannot set card state directly (fixture presets: emulated images only)');
  if (step.what === 'usage-counter') {
    await ctx.preset({ what: 'usage-counter', tid: ctx.face(step.ticket).tid, counter: step.counter });
    ctx.counters.set(step.ticket, step.counter);
  } else {
    await ctx.preset({ what: 'ticket-table', count: step.count });
  }
  ctx.challenge = null;
  ctx.session = null;
  const r = await transmit(ctx, encodeCommand({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: SELECT_P2.NO_FCI, data: AID }), false);
  if (r.sw !== SW.SUCCESS) throw new StepFailure(`SELECT after the preset answered ${swHex(r.sw)}`);
}

async function certify(ctx: GroupContext, e: Expect): Promise<void> {
  const ca = ctx.keys.ca;
  if (!ca) throw new StepFailure(`profile ${ctx.keys.profileName} has no CA: certify is for RSA cards`);
  for (const [pubTag, certTag, usage] of [
    [T.CARD_ENCRYPTION_PUBLIC_KEY, T.CARD_ENCRYPTION_CERTIFICATE, 'encryption'],
    [T.CARD_SIGNING_PUBLIC_KEY, T.CARD_SIGNING_CERTIFICATE, 'signature'],
  ] as const) {
    const cert = ca.certifyCardKey(ctx.serial, usage, await getData(ctx, pubTag));
    const r = await send(ctx, 'PUT DATA', cert, 0x00, certTag);
    expectSw(e, r.sw, `PUT DATA ${certTag.toString(16).toUpperCase()}: `);
  }
  ctx.encCert = ctx.signCert = undefined;
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  const i = Math.floor(bit / 8) % out.length;
  out[i] ^= 0x80 >>> bit % 8;
  return out;
}

/** The envelope's fields (tag → value) in order, to rebuild it with one change. */
function envelopeFields(sealed: Uint8Array): { tag: number; value: Uint8Array }[] {
  return decodeAll(TlvMap.parse(sealed).require(T.SEALED)).map((t) => ({ tag: t.tag, value: t.value.slice() }));
}


async function sealTicket(ctx: GroupContext, ref: string, m: LoadMutation = {}, certified?: CertifiedSigner): Promise<Uint8Array> {
  let face = ctx.face(ref);
  // Binding mutations: a face signed for another card (CLONE), or an unbound version 1 face.
  if (m.binding === 'other-card') face = { ...face, card: otherSerial(ctx.serial) };
  if (m.binding === 'version-1') face = { ...face, version: 1, card: undefined };
  const faceEnc = encodeTicketFace(face);
  let signer: { sign(m: Uint8Array): Uint8Array };
  let keyId: Uint8Array;
  let certificate: Uint8Array | undefined;
  if (certified) {
    ({ signer, keyId, certificate } = certificateFor(ctx, certified, face.issuedAt, face.operator));
  } else {
    const a = authority(ctx.keys, m.authority ?? 'authority');
    signer = a.key;
    keyId = a.keyId;
  }
  let signature = signer.sign(verificationCodeMessage(faceEnc));
  if (m.flip?.field === 'tfv-signature') signature = flipBit(signature, m.flip.bit);
  const tfvEnc = encodeVerificationCode({ suite: m.tfvSuite ?? SUITE[ctx.keys.suite], authorityKeyId: keyId, signature, certificate });
  const shownFace = m.alterFace ? encodeTicketFace({ ...face, ...m.alterFace } as TicketFace) : faceEnc;
  const payload =
    m.payload === 'face-only'
      ? shownFace
      : m.payload === 'tfv-first'
        ? concat(tfvEnc, shownFace)
        : m.payload === 'trailing-byte'
          ? concat(shownFace, tfvEnc, new Uint8Array([0x00]))
          : concat(shownFace, tfvEnc);
  const recipient = m.recipient === 'other-card' ? ctx.serial.map((b, i) => (i === 7 ? b ^ 0xff : b)) : ctx.serial;
  const suite = getSuite(ctx.keys.suite);
  const { key, encapsulation } = suite.encapsulate(await encryptionKey(ctx));
  let sealed: Uint8Array;
  if (m.payload === 'bad-padding') {
    // A valid MAC over a ciphertext whose plaintext lacks ISO 9797-1 method 2 padding: the card must
    // give the same 6988 as for a bad MAC, or it is a padding oracle.
    const plain = concat(payload, new Uint8Array((16 - (payload.length % 16)) % 16 || 16).fill(0x41));
    const iv = new Uint8Array(16).fill(0x5a);
    const c = createCipheriv('aes-128-cbc', deriveKey(key, 0x01), iv);
    c.setAutoPadding(false);
    const ciphertext = new Uint8Array(Buffer.concat([c.update(plain), c.final()]));
    const E = ENVELOPE_FIELD;
    const body = concat(tlv(E.version, new Uint8Array([1])), tlv(E.suite, new Uint8Array([suite.id])), tlv(E.recipient, recipient), tlv(E.encapsulation, encapsulation), tlv(E.iv, iv), tlv(E.ciphertext, ciphertext));
    sealed = template(T.SEALED, body, tlv(E.mac, cmac(deriveKey(key, 0x02), body)));
  } else {
    sealed = sealWithKey(suite.id, key, encapsulation, recipient, payload);
  }
  if (m.flip && m.flip.field !== 'tfv-signature') {
    const tag = ENVELOPE_FIELD[m.flip.field];
    sealed = template(T.SEALED, ...envelopeFields(sealed).map((f) => tlv(f.tag, f.tag === tag ? flipBit(f.value, m.flip!.bit) : f.value)));
  }
  if (m.envelope) {
    const fields = envelopeFields(sealed);
    switch (m.envelope) {
      case 'truncated':
        sealed = sealed.subarray(0, sealed.length - 1);
        break;
      case 'trailing-byte':
        sealed = concat(sealed, new Uint8Array([0x00]));
        break;
      case 'fields-swapped':
        [fields[4], fields[5]] = [fields[5], fields[4]];
        sealed = template(T.SEALED, ...fields.map((f) => tlv(f.tag, f.value)));
        break;
      case 'version-2':
      case 'suite-other':
        fields[m.envelope === 'version-2' ? 0 : 1].value = new Uint8Array([m.envelope === 'version-2' ? 2 : suite.id === 1 ? 2 : 1]);
        sealed = template(T.SEALED, ...fields.map((f) => tlv(f.tag, f.value)));
        break;
    }
  }
  return sealed;
}

async function load(ctx: GroupContext, step: Extract<Step, { kind: 'load' }>): Promise<void> {
  let sealed = step.reuse ? ctx.sealed.get(step.ticket) : undefined;
  if (step.reuse && !sealed) throw new StepFailure(`ticket ${step.ticket} was not sealed earlier in this test`);
  if (step.issuedAfter) ctx.face(step.ticket, undefined, ctx.face(step.issuedAfter.ticket).issuedAt + step.issuedAfter.seconds);
  let r: { data: Uint8Array; sw: number };
  if (sealed) r = await send(ctx, 'LOAD', sealed, undefined, undefined, step.ne);
  else if (!step.mutation && !step.expect.sw.includes('9103') && !step.issuedAfter) {
    ({ sealed, r } = await loadAboveFloor(ctx, step.ticket, () => sealTicket(ctx, step.ticket, undefined, step.signer), step.ne));
  } else {
    sealed = await sealTicket(ctx, step.ticket, step.mutation, step.signer);
    r = await send(ctx, 'LOAD', sealed, undefined, undefined, step.ne);
  }
  if (!step.mutation) ctx.sealed.set(step.ticket, sealed);
  expectSw(step.expect, r.sw);
  if (r.sw === SW.SUCCESS || (step.ne !== undefined && (r.sw & 0xff00) === SW.BYTES_REMAINING)) ctx.counters.set(step.ticket, 0);
  await checkData(ctx, step.expect, r.data);
}

/** The event a mutated command carries: none for DELETE (unless the mutation adds one), the step's otherwise. */
function mutatedEvent(name: 'WRITE USAGE' | 'DELETE', event: number | undefined, fields: CommandMutation['fields'] | MacMutation['fields']): number | undefined {
  if (fields === 'missing-event') return undefined;
  if (fields === 'extra-event') return USAGE_EVENT.ENTRY;
  if (fields === 'unknown-event') return 0x09;
  return name === 'DELETE' ? undefined : event;
}

/**
 * The authenticated body from the one field list of sdk/commands/usage-command.ts: a WRITE USAGE layout when
 * the command carries an event, DELETE's otherwise; 'swapped' exchanges TID and counter.
 */
function mutatedBody(mode: GateMode, v: UsageCommandFields, fields: CommandMutation['fields'] | MacMutation['fields']): Uint8Array {
  const items = usageFieldItems(v.event === undefined ? 'DELETE' : 'WRITE USAGE', mode, v);
  if (fields === 'swapped') {
    const tid = items.findIndex((i) => i[0] === T.TID);
    const counter = items.findIndex((i) => i[0] === T.COUNTER);
    [items[tid], items[counter]] = [items[counter], items[tid]];
  }
  return concat(...items);
}

async function signedCommand(ctx: GroupContext, step: Extract<Step, { kind: 'signed-command' }>): Promise<void> {
  const m: CommandMutation = step.mutation ?? {};
  let data: Uint8Array;
  if (m.replay) {
    const previous = ctx.lastSigned.get(step.ticket);
    if (!previous) throw new StepFailure('replay of a command this test did not send');
    data = previous;
  } else {
    const term = terminal(ctx.keys, step.terminal ?? 'terminal');
    const signer = m.signWith ? terminal(ctx.keys, m.signWith).keys.signature : term.keys.signature;
    let challenge = ctx.challenge ?? new Uint8Array(8);
    if (m.challenge === 'flip-bit') challenge = flipBit(challenge, 0);
    if (m.challenge === 'zero') challenge = new Uint8Array(8);
    if (m.challenge === 'previous') challenge = ctx.spentChallenge ?? new Uint8Array(8);
    if (m.challenge === 'session') challenge = ctx.session?.rc ?? new Uint8Array(8);
    if (m.challenge === 'issuer') challenge = ctx.issuerChallenge ?? new Uint8Array(8);
    ctx.spentChallenge = challenge;
    const named = m.otherTicket ?? step.ticket;
    const values = (station: string): UsageCommandFields => ({
      keyId: term.keys.keyId,
      cardChallenge: challenge,
      tid: m.tid ?? ctx.face(named).tid,
      counter: ((ctx.counters.get(named) ?? 0) + (m.counterDelta ?? 0)) & 0xffff,
      event: mutatedEvent(step.name, step.event, m.fields),
      gateId: step.gate ?? 'VG01',
      station,
      time: step.time ?? 1767258000,
      // DF21: the digest of the view the card showed (a relay would send that of the view it made up).
      viewDigest: m.viewDigest === 'flip-bit' ? flipBit(ctx.viewDigest, 0) : ctx.viewDigest,
    });
    const station = step.station ?? 'STN';
    const body = mutatedBody('pki', values(station), m.fields);
    const serial = m.otherCardSerial ? otherSerial(ctx.serial) : ctx.serial;
    let signature = signer.sign(usageSignatureMessage(m.signAs ?? step.name, serial, body));
    if (m.flipSignatureBit !== undefined) signature = flipBit(signature, m.flipSignatureBit);
    data = encodeUsageCommand('pki', m.alterAfterSigning ? mutatedBody('pki', values(station + 'X'), m.fields) : body, signature);
    if (m.fields === 'trailing-byte') data = concat(data, new Uint8Array([0x00]));
    if (m.fields === 'truncated') data = data.subarray(0, data.length - 1);
    ctx.lastSigned.set(step.ticket, data);
  }
  ctx.challenge = null; // spent by the card whatever it answers
  const r = await send(ctx, step.name, data, USAGE_P1.pki, undefined, step.ne);
  expectSw(step.expect, r.sw);
  await checkData(ctx, step.expect, r.data);
}

/** Fill the card's NVM with filler tickets (then their usage records) until it reports 6A84. */
async function fill(ctx: GroupContext, until: 'load-refused' | 'usage-refused', e: Expect): Promise<void> {
  const filler = (big: boolean): TicketFaceJson => {
    const n = ctx.fillers.length + 1;
    const base: TicketFaceJson = { version: 2, operator: ctx.keys.operator, tid: `FILL-${n}`, serviceDate: 20260101, validFrom: 1767225600, validUntil: 1767330000, issuedAt: 1767200000 + n };
    return big ? { ...base, train: 'F'.repeat(16), origin: 'O'.repeat(16), destination: 'D'.repeat(16), passenger: 'P'.repeat(32), seat: 'S'.repeat(8), travelClass: 'C'.repeat(8) } : base;
  };
  const loadFiller = async (big: boolean) => {
    const ref = `#fill${ctx.fillers.length + 1}`;
    const { r } = await loadAboveFloor(ctx, ref, () => {
      ctx.face(ref, filler(big));
      return sealTicket(ctx, ref);
    });
    if (r.sw === SW.SUCCESS) ctx.fillers.push(ref);
    else ctx.faces.delete(ref);
    return r.sw;
  };
  let sw = SW.SUCCESS;
  // Large fillers first, then minimal ones, so that less than one minimal ticket stays free.
  for (const big of [true, false]) {
    for (let i = 0; i < 10_000 && (sw = await loadFiller(big)) === SW.SUCCESS; i++);
    if (sw !== SW.NOT_ENOUGH_MEMORY) throw new StepFailure(`filling the card: LOAD answered ${swHex(sw)} before 6A84`);
  }
  if (until === 'usage-refused') {
    // Each filler's usage record can grow once by a 16-byte gate and station: spend the last free bytes.
    sw = SW.SUCCESS;
    for (const ref of ctx.fillers) {
      const tid = ctx.face(ref).tid;
      const q = encodeVerifyQuery({ keyId: terminal(ctx.keys).keys.keyId, terminalChallenge: new Uint8Array(16), criteria: { tid } });
      const v = await send(ctx, 'VERIFY', q);
      if (v.sw !== SW.SUCCESS) throw new StepFailure(`filling usage records: VERIFY answered ${swHex(v.sw)}`);
      openView(ctx, 'terminal', v.data, ref);
      const w = await send(ctx, 'WRITE USAGE', await buildFillerUsage(ctx, ref));
      sw = w.sw;
      if (sw !== SW.SUCCESS) break;
    }
    if (sw !== SW.NOT_ENOUGH_MEMORY) throw new StepFailure(`filling usage records: WRITE USAGE answered ${swHex(sw)}, never 6A84`);
  }
  expectSw(e, sw);
}

async function buildFillerUsage(ctx: GroupContext, ref: string): Promise<Uint8Array> {
  const term = terminal(ctx.keys);
  const body = encodeUsageBody('WRITE USAGE', 'pki', {
    keyId: term.keys.keyId,
    cardChallenge: ctx.challenge ?? new Uint8Array(8),
    tid: ctx.face(ref).tid,
    counter: ctx.counters.get(ref) ?? 0,
    event: USAGE_EVENT.PUNCH,
    gateId: 'G'.repeat(16),
    station: 'S'.repeat(16),
    time: 1767258000,
    viewDigest: ctx.viewDigest,
  });
  ctx.challenge = null;
  return encodeUsageCommand('pki', body, term.keys.signature.sign(usageSignatureMessage('WRITE USAGE', ctx.serial, body)));
}

// ---- checks ----------------------------------------------------------------------------------------

/** Open a pki view: the card's serial in it, its challenge and digest kept for the next signed command. */
function openView(ctx: GroupContext, terminalName: string, data: Uint8Array, ticket: string | undefined): DecodedTicketView {
  const term = terminal(ctx.keys, terminalName);
  let plain: Uint8Array;
  try {
    plain = open(term.keys.encryption, SUITE[ctx.keys.suite], term.keys.keyId, data);
  } catch (e) {
    throw new StepFailure(`the answer does not open with the ${terminalName} key: ${(e as Error).message}`);
  }
  const v = viewOf(plain);
  if (!equal(v.cardSerial, ctx.serial)) throw new StepFailure('the ticket view names another card serial');
  if (ticket && v.usage) ctx.counters.set(ticket, v.usage.counter);
  if (v.cardChallenge) ctx.challenge = v.cardChallenge.slice();
  ctx.viewDigest = sha256(plain);
  return v;
}

/** The view has the fixed length of its request (apdu-spec README 3.2), whatever it shows. */
function checkViewLength(v: DecodedTicketView, verificationCode: boolean, certificate?: Uint8Array): void {
  const want = viewLengthFor({ verificationCode, signingCertificate: certificate });
  if (v.encoded.length !== want) throw new StepFailure(`the view has ${v.encoded.length} bytes, not the fixed ${want}`);
}

/**
 * TF_V as the view carried it must be the signature over exactly this face by the test authority, or by a signing
 * key it certified (A4 in TF_V) for the ticket's operator and issue time.
 */
function checkTfv(ctx: GroupContext, code: VerificationCode, faceEncoded: Uint8Array): void {
  const roots = [...ctx.keys.authorities.values()].filter((a) => a.installed).map((a) => ({ keyId: a.keyId, publicKey: a.key.publicKey, scopes: a.scopes }));
  const face = decodeTicketFace(faceEncoded);
  const key = resolveSigningKey(ctx.keys.suite, code.authorityKeyId, code.certificate, roots, { operator: face.operator, at: face.issuedAt });
  if (!key.ok) throw new StepFailure(`TF_V in the view names no key of the test profile: ${key.message}`);
  if (!getSuite(ctx.keys.suite).verify(key.publicKey, verificationCodeMessage(faceEncoded), code.signature)) {
    throw new StepFailure('TF_V in the view does not verify with the test authority key (or the key it certified)');
  }
}

function compareUsage(got: Record<string, unknown>, want: Record<string, string | number> | undefined, what: string): void {
  for (const [k, v] of Object.entries(want ?? {})) {
    if (got[k] !== v) throw new StepFailure(`${what}: ${k} is ${String(got[k])}, expected ${v}`);
  }
}

async function runCheck(ctx: GroupContext, c: Check, data: Uint8Array, apdu?: Uint8Array): Promise<void> {
  switch (c.kind) {
    case 'ticket-view': {
      const v = openView(ctx, c.terminal, data, c.ticket);
      const status = c.status ?? 'shown';
      if (v.status !== status) throw new StepFailure(`the view says ${v.status}, expected ${status}`);
      checkViewLength(v, c.verificationCode);
      if (status !== 'shown') {
        if (c.terminalChallenge !== undefined && (!v.terminalChallenge || hex(v.terminalChallenge) !== c.terminalChallenge.toUpperCase())) throw new StepFailure('the view does not echo the terminal challenge');
        if (c.cardChallenge !== (v.cardChallenge !== undefined)) throw new StepFailure(`card challenge ${c.cardChallenge ? 'missing from' : 'unexpected in'} the view`);
        return;
      }
      const want = encodeTicketFace(ctx.face(c.ticket!));
      if (!equal(v.faceEncoded!, want)) throw new StepFailure(`the view holds ticket ${JSON.stringify(v.face)}, expected ${c.ticket}`);
      if (c.terminalChallenge !== undefined && (!v.terminalChallenge || hex(v.terminalChallenge) !== c.terminalChallenge.toUpperCase())) {
        throw new StepFailure('the view does not echo the terminal challenge');
      }
      if (c.terminalChallenge === undefined && v.terminalChallenge) throw new StepFailure('the view echoes a terminal challenge the query did not carry');
      if (c.cardChallenge !== (v.cardChallenge !== undefined)) throw new StepFailure(`card challenge ${c.cardChallenge ? 'missing from' : 'unexpected in'} the view`);
      if (c.verificationCode !== (v.verificationCode !== undefined)) throw new StepFailure(`TF_V ${c.verificationCode ? 'missing from' : 'unexpected in'} the view`);
      if (v.verificationCode) checkTfv(ctx, v.verificationCode, want);
      compareUsage(v.usage!, c.usage, 'TF_B');
      return;
    }
    case 'receipt': {
      const r = parseReceipt(data);
      if (!receiptAnswers(r, ctx.lastCommandData)) throw new StepFailure('receipt digest does not match the command sent');
      if (!equal(r.cardSerial, ctx.serial) || r.tid !== ctx.face(c.ticket).tid) throw new StepFailure('receipt names another card or ticket');
      if (!r.faceDigest || !equal(r.faceDigest, faceDigestOf(encodeTicketFace(ctx.face(c.ticket))))) throw new StepFailure('receipt DF20 is not the digest of the ticket face');
      if (r.event !== c.event || r.counter !== c.counter) throw new StepFailure(`receipt event ${r.event} counter ${r.counter}, expected ${c.event} / ${c.counter}`);
      if ((r.usage === undefined) !== (c.event === USAGE_EVENT.DELETED)) throw new StepFailure('receipt TF_B presence is wrong for this event');
      const key = await signingKey(ctx);
      if (r.version !== 2 || !getSuite(ctx.keys.suite).verify(key, receiptMessage(r), r.signature)) {
        throw new StepFailure('receipt signature does not verify with the card signing certificate');
      }
      if (r.usage) compareUsage(r.usage, c.usage, 'receipt TF_B');
      ctx.counters.set(c.ticket, r.counter);
      return;
    }
    case 'load-result': {
      const a = decodeLoadAnswer(data);
      if (a.sequenceNumber === 0 || a.tid !== ctx.face(c.ticket).tid) throw new StepFailure(`LOAD answered ${hex(data)}, not the stored ticket ${c.ticket}`);
      return;
    }
    case 'public-key': {
      let bits = 0;
      try {
        bits = rsaPublicKey(data).asymmetricKeyDetails?.modulusLength ?? 0;
      } catch (e) {
        throw new StepFailure(`not a public key: ${(e as Error).message}`);
      }
      if (bits !== c.bits) throw new StepFailure(`public key of ${bits} bits, expected ${c.bits}`);
      return;
    }
    case 'certificate': {
      try {
        if (!ctx.keys.ca) throw new Error('the profile has no CA');
        const cert = verifyCardCertificate(ctx.keys.ca.certificateDer, data, c.usage);
        if (!equal(cert.serial, ctx.serial)) throw new Error('certificate names another card');
      } catch (e) {
        throw new StepFailure(`card certificate: ${(e as Error).message}`);
      }
      return;
    }
    case 'identity-key': {
      const kgc = ctx.keys.kgc;
      if (!kgc) throw new StepFailure('identity-key check needs the SM9 profile');
      const id = cardIdentity(ctx.serial);
      const want = c.usage === 'encryption' ? sm9EncryptionPublicKey(id, kgc.encMasterPublicKey) : sm9SigningPublicKey(id, kgc.signMasterPublicKey);
      if (!equal(data, want)) throw new StepFailure(`card ${c.usage} key ${hex(data)} is not identity "${id}" under the test KGC`);
      return;
    }
    case 'card-identity': {
      const got = fromUtf8(data);
      if (got !== cardIdentity(ctx.serial)) throw new StepFailure(`card identity "${got}", expected "${cardIdentity(ctx.serial)}"`);
      return;
    }
    case 'mac-receipt': {
      const r = parseReceipt(data);
      const s = ctx.session;
      if (!s) throw new StepFailure('a MAC receipt without a session');
      if (r.commandDigest || !r.mac) throw new StepFailure('a sym receipt carries a MAC and no command digest');
      if (!equal(r.cardSerial, ctx.serial) || r.tid !== ctx.face(c.ticket).tid) throw new StepFailure('receipt names another card or ticket');
      if (!r.faceDigest || !equal(r.faceDigest, faceDigestOf(encodeTicketFace(ctx.face(c.ticket))))) throw new StepFailure('receipt DF20 is not the digest of the ticket face');
      if (r.event !== c.event || r.counter !== c.counter) throw new StepFailure(`receipt event ${r.event} counter ${r.counter}, expected ${c.event} / ${c.counter}`);
      if ((r.usage === undefined) !== (c.event === USAGE_EVENT.DELETED)) throw new StepFailure('receipt TF_B presence is wrong for this event');
      if (!checkReceiptMac(s.macKey, ctx.lastCommandMac, r)) {
        throw new StepFailure('receipt MAC does not chain on the command MAC under the session key');
      }
      if (r.usage) compareUsage(r.usage, c.usage, 'receipt TF_B');
      ctx.counters.set(c.ticket, r.counter);
      return;
    }
    case 'same-answer': {
      if (!equal(data, ctx.lastWhole)) throw new StepFailure(`answer ${hex(data)} differs from the one GET RESPONSE completed (${hex(ctx.lastWhole)})`);
      return;
    }
  }
  void apdu;
}

// ---- serial-bound personalisation, gate mode sym -----------------------------------------------------

function otherSerial(serial: Uint8Array): Uint8Array {
  return serial.map((b, i) => (i === 7 ? b ^ 0xff : b));
}

async function install(ctx: GroupContext, step: Extract<Step, { kind: 'install' }>): Promise<void> {
  const serial = step.otherCard ? otherSerial(ctx.serial) : ctx.serial;
  const kgc = ctx.keys.kgc;
  if (step.what !== 'sym-key' && !kgc) throw new StepFailure(`install ${step.what} needs the SM9 profile`);
  let r: { sw: number };
  switch (step.what) {
    case 'identity':
      r = await send(ctx, 'PUT DATA', encodeIdentity(cardIdentity(serial)), 0x00, PUT_DATA_P2.IDENTITY);
      break;
    case 'encryption-key':
      r = await send(ctx, 'PUT KEY', encodePrivateKey(kgc!.extractEncryptionKey(cardIdentity(serial))), PUT_KEY_P1.CARD_ENCRYPTION_PRIVATE);
      break;
    case 'signing-key':
      r = await send(ctx, 'PUT KEY', encodePrivateKey(kgc!.extractSigningKey(cardIdentity(serial))), PUT_KEY_P1.CARD_SIGNING_PRIVATE);
      break;
    case 'sym-key': {
      const mk = masterKey(ctx.keys, step.masterKey);
      r = await send(ctx, 'PUT KEY', encodeDiversifiedKey({ keyId: mk.keyId, operator: mk.operator, key: diversify(mk.key, serial, mk.operator), privacyKey: privacyKey(mk.key, mk.operator) }), PUT_KEY_P1.DIVERSIFIED);
      break;
    }
  }
  expectSw(step.expect, r.sw);
}

/** The key id a verify step names: a terminal bundle's, or a master key's (sym), whichever the profile calls `name`. */
function namedKeyId(ctx: GroupContext, name: string): Uint8Array {
  const mk = ctx.keys.masterKeys.get(name);
  if (mk) return mk.keyId;
  return terminal(ctx.keys, name).keys.keyId;
}

async function verifyStep(ctx: GroupContext, step: Extract<Step, { kind: 'verify' }>): Promise<void> {
  const sym = step.mode === 'sym';
  const keyName = step.key ?? (sym ? 'operator' : 'terminal');
  const rt = new Uint8Array(randomBytes(LIMITS.terminalChallengeLength));
  const tid = step.tid ?? ctx.face(step.ticket).tid;
  const query = encodeVerifyQuery({ keyId: namedKeyId(ctx, keyName), terminalChallenge: rt, criteria: { tid } });
  // Any VERIFY ends the card's shown view and sym session, whatever it answers.
  ctx.challenge = null;
  const r = await send(ctx, 'VERIFY', query, verifyP1(sym ? 'sym' : 'pki', !!step.tfv, !!step.certificate));
  expectSw(step.expect, r.sw);
  expectSameLength(ctx, step.expect, r.data.length);
  await checkData(ctx, step.expect, r.data);
  if (r.sw !== SW.SUCCESS) return;
  if (!sym) {
    checkView(ctx, step, openView(ctx, keyName, r.data, step.ticket), rt);
    return;
  }
  const mk = masterKey(ctx.keys, keyName);
  let b5: ReturnType<typeof decodeSessionView>;
  try {
    b5 = decodeSessionView(r.data);
  } catch (e) {
    throw new StepFailure(`sym VERIFY answer is not B5 { C6, C7, 85, 8E }: ${(e as Error).message}`);
  }
  // DF24: the serial masked under the operator's K_priv with this RC; no serial travels in clear.
  const serial = unmaskSerial(privacyKey(mk.key, mk.operator), b5.maskedSerial, b5.cardChallenge);
  if (!serial || !equal(serial, ctx.serial)) throw new StepFailure('B5 DF24 does not unmask to this card\'s serial with the test K_priv and the RC');
  if (Buffer.from(r.data).includes(Buffer.from(ctx.serial))) throw new StepFailure('the sym VERIFY answer carries the card serial in clear');
  const keys = sessionKeys(diversify(mk.key, serial, mk.operator), rt, b5.cardChallenge);
  if (!equal(sessionViewMac(keys.mac, b5.head), b5.mac)) throw new StepFailure('B5 MAC does not verify with K_card from the test master key');
  let plain: Uint8Array;
  try {
    plain = sessionDecrypt(keys.enc, b5.cryptogram);
  } catch (e) {
    throw new StepFailure(`B5 cryptogram: ${(e as Error).message}`);
  }
  if (ctx.session) ctx.previousSession = ctx.session;
  ctx.session = { rc: b5.cardChallenge, macKey: keys.mac, chain: b5.mac, rt, masterKey: keyName };
  checkView(ctx, step, viewOf(plain), rt, b5.cardChallenge);
}

/** The view B2 as sdk/commands/ticket-view.ts decodes it; a malformed one fails the step. */
function viewOf(plain: Uint8Array): DecodedTicketView {
  try {
    return decodeTicketView(plain);
  } catch (e) {
    throw new StepFailure(`the view is not B2: ${(e as Error).message}`);
  }
}

/** The view of a verify step: its status, this ticket, both challenges, TF_V as asked and verifying, TF_B as expected, its fixed length. */
function checkView(ctx: GroupContext, step: Extract<Step, { kind: 'verify' }>, v: DecodedTicketView, rt: Uint8Array, rc?: Uint8Array): void {
  const status = step.status ?? 'shown';
  if (v.status !== status) throw new StepFailure(`the view says ${v.status}, expected ${status}`);
  if (!equal(v.cardSerial, ctx.serial)) throw new StepFailure('the view names another card serial');
  if (!v.terminalChallenge || !equal(v.terminalChallenge, rt)) throw new StepFailure('the view does not echo the terminal challenge');
  if (!v.cardChallenge || (rc && !equal(v.cardChallenge, rc))) throw new StepFailure(rc ? 'the view does not carry the session RC' : 'the view carries no card challenge');
  if (!rc) ctx.challenge = v.cardChallenge.slice();
  if (!!step.certificate !== (v.signingCertificate !== undefined) && ctx.keys.suite === 'rsa') throw new StepFailure(`D6 ${step.certificate ? 'missing from' : 'unexpected in'} the view`);
  if (v.signingCertificate && ctx.signCert && !equal(v.signingCertificate, ctx.signCert)) throw new StepFailure('D6 in the view is not the card\'s signing certificate');
  checkViewLength(v, !!step.tfv, v.signingCertificate);
  if (status !== 'shown') return;
  const want = encodeTicketFace(ctx.face(step.ticket));
  if (!equal(v.faceEncoded!, want)) throw new StepFailure(`the view holds another ticket than ${step.ticket}`);
  ctx.counters.set(step.ticket, v.usage!.counter);
  if (!!step.tfv !== (v.verificationCode !== undefined)) throw new StepFailure(`TF_V ${step.tfv ? 'missing from' : 'unexpected in'} the view`);
  if (v.verificationCode) checkTfv(ctx, v.verificationCode, want);
  compareUsage(v.usage!, step.usage, 'TF_B');
}

async function macedCommand(ctx: GroupContext, step: Extract<Step, { kind: 'maced-command' }>): Promise<void> {
  const m: MacMutation = step.mutation ?? {};
  // Without a session the command still goes out, well formed, under a zero key: the card must refuse it.
  const zero: HostSession = { rc: ctx.challenge ?? new Uint8Array(8), macKey: new Uint8Array(16), chain: new Uint8Array(8), rt: new Uint8Array(16), masterKey: 'operator' };
  let s = ctx.session ?? zero;
  if (m.challenge === 'previous') s = ctx.previousSession ?? zero;
  if (m.challenge === 'pki') s = { ...zero, rc: ctx.issuerChallenge ?? ctx.challenge ?? new Uint8Array(8) };
  let data: Uint8Array;
  let mac: Uint8Array;
  const previous = ctx.lastMaced.get(step.ticket);
  if (m.replay || m.replayPatched) {
    if (!previous) throw new StepFailure('replay of a maced command this test did not send');
    data = previous;
    const fields = decodeAll(TlvMap.parse(previous).require(T.MACED_COMMAND)).map((f) => ({ tag: f.tag, value: f.value.slice() }));
    mac = fields[fields.length - 1].value;
    if (m.replayPatched) data = template(T.MACED_COMMAND, ...fields.map((f) => tlv(f.tag, f.tag === T.CARD_CHALLENGE ? (ctx.session?.rc ?? f.value) : f.value)));
  } else {
    let rc = s.rc;
    if (m.challenge === 'flip-bit') rc = flipBit(rc, 0);
    const named = m.otherTicket ?? step.ticket;
    const values = (station: string): UsageCommandFields => ({
      cardChallenge: rc,
      tid: m.tid ?? ctx.face(named).tid,
      counter: ((ctx.counters.get(named) ?? 0) + (m.counterDelta ?? 0)) & 0xffff,
      event: mutatedEvent(step.name, step.event, m.fields),
      gateId: step.gate ?? 'VG01',
      station,
      time: step.time ?? 1767258000,
    });
    const station = step.station ?? 'STN';
    const body = mutatedBody('sym', values(station), m.fields);
    let macKey = s.macKey;
    if (m.macWith) {
      const other = masterKey(ctx.keys, m.macWith);
      macKey = sessionKeys(diversify(other.key, ctx.serial, other.operator), s.rt, s.rc).mac;
    }
    const serial = m.otherCardSerial ? otherSerial(ctx.serial) : ctx.serial;
    mac = usageCommandMac(macKey, s.chain, m.macAs ?? step.name, serial, body);
    if (m.flipMacBit !== undefined) mac = flipBit(mac, m.flipMacBit);
    data = encodeUsageCommand('sym', m.alterAfterMac ? mutatedBody('sym', values(station + 'X'), m.fields) : body, mac);
    if (m.fields === 'trailing-byte') data = concat(data, new Uint8Array([0x00]));
    if (m.fields === 'truncated') data = data.subarray(0, data.length - 1);
    ctx.lastMaced.set(step.ticket, data);
  }
  ctx.lastCommandMac = mac;
  ctx.challenge = null; // the card spends any shown view and session, whatever it answers
  const r = await send(ctx, step.name, data, m.p1 ?? USAGE_P1.sym, undefined, step.ne);
  expectSw(step.expect, r.sw);
  await checkData(ctx, step.expect, r.data);
}
