// `eticket issue --from batch.csv` as an operator runs it (the compiled CLI, a card image, the embedded store),
// timed end to end, beside the crypto floor of issuance measured in the same run with the same keys (issue 13).

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EticketCard } from '../card/applet.js';
import { FileBackend } from '../card/nvm.js';
import { open, seal } from '../sdk/crypto/envelope.js';
import { getSuite, suiteProvider } from '../sdk/crypto/suites.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import { verificationCodeMessage } from '../sdk/ticket.js';
import { encodeLoadPayload } from '../sdk/commands/load.js';
import { WorkDir } from '../host/cli/workdir.js';
import { pglitePrepareTemplate } from '../testing/pglite-template.js';
import type { CardCredentials } from '../sdk/roles/trust.js';
import { latency } from './stats.js';

const UP = fileURLToPath(new URL('../', import.meta.url));
const ROOT = basename(UP) === 'dist' ? dirname(UP) : UP;
const BIN = join(ROOT, 'bin', 'eticket.mjs');
const PASSPHRASE = 'bench passphrase, not a secret';

/** One timed batch of the bench. */
export interface CliIssuanceRun {
  commandSeconds: number;
  rowSpanSeconds: number;
  commandCpuSeconds: number | null;
  /** Floor ms / command ms per ticket of this batch, the floor being the bench's (all its rounds). */
  ratioCommand: number;
}

export interface CliIssuanceBench {
  rows: number;
  /**
   * The batches timed (three, one with --quick), each onto a card of its own in the same working directory, with a
   * floor round before the first and after each: the figures below are those of the batch with the median time.
   */
  runs: CliIssuanceRun[];
  /** Whole command, process start to exit (passphrase KDF, store and card opening included). */
  commandSeconds: number;
  commandTicketsPerSecond: number;
  /** From the first row's result line to the last: the batch's own rate, without the fixed start-up. */
  rowsTicketsPerSecond: number;
  /** Median of one issuance's cryptography (see issuanceFloor), ms, measured before and after the command. */
  cryptoFloorMs: number;
  floorTicketsPerSecond: number;
  /** CLI rate / floor rate: 1 would be the CLI doing nothing but its cryptography. Issue 13's goal: ≥ 0.5. */
  ratioCommand: number;
  ratioRows: number;
  /**
   * The same in CPU time (Linux: the batch process's user + system time, from this process's children times;
   * the floor's from process.cpuUsage): what the work costs without the waits for a core or the disk. Null
   * where /proc is not there.
   */
  commandCpuSeconds: number | null;
  cryptoFloorCpuMs: number;
  ratioCommandCpu: number | null;
  /** Growth of the card image per ticket loaded. */
  imageBytesPerTicket: number;
  loadAverage: { before: number[]; after: number[] };
}

function eticket(cwd: string, args: string[]): void {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env: env(cwd), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench: eticket ${args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
}

function env(cwd: string): NodeJS.ProcessEnv {
  return { ...process.env, ETICKET_HOME: cwd, ETICKET_PASSPHRASE: PASSPHRASE };
}

/** The batch: `rows` tickets for one day, several trains, seats and names, as a sales export would give. */
function batchCsv(rows: number, batch = 0): string {
  const lines = ['serviceDate,train,origin,destination,departure,coach,seat,fare,currency,passenger'];
  for (let i = 0; i < rows; i++) lines.push(`2030-01-15,G${(i % 40) + 1},BJS,SHH,${String(7 + (i % 12)).padStart(2, '0')}:00,${(i % 16) + 1},${(i % 90) + 1}A,55300,CNY,PASSENGER ${batch}-${i}`);
  return lines.join('\n') + '\n';
}

/** Run the batch; time the process and the span of its per-row result lines. */
function runBatch(cwd: string, card: string, batch: string): Promise<{ seconds: number; rowSpanSeconds: number; rows: number; summary: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [BIN, '--json', 'issue', '--card', card, '--from', batch], { cwd, env: env(cwd), stdio: ['ignore', 'pipe', 'pipe'] });
    let buffer = '';
    let stderr = '';
    let first = 0;
    let last = 0;
    let rows = 0;
    let summary: Record<string, unknown> | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      const now = performance.now();
      buffer += d;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        const j = JSON.parse(line) as Record<string, unknown>;
        if (j.summary) summary = j;
        else {
          if (!rows) first = now;
          last = now;
          rows++;
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0 || !summary) return reject(new Error(`bench: the batch exited ${code}: ${stderr.trim().split('\n').pop()}`));
      resolve({ seconds, rowSpanSeconds: (last - first) / 1000, rows, summary });
    });
  });
}

/**
 * Every cryptographic step one ticket of the batch costs, with the working directory's and the card's own keys:
 * the authority signs TF_V; seals TF_A ‖ TF_V to the card (KEM + AES-CBC + CMAC); signs the bill (512 bytes, about
 * a bill's canonical JSON) with a fresh bill id and the face digest; the card opens the envelope (decapsulation,
 * CMAC, AES-CBC), checks TF_V and digests the ticket for its replay list. Once per batch, spread over its rows:
 * the authority key opened from its file with the passphrase (scrypt, AES-GCM, the key's import: a command cannot
 * sign without it; the command derives it once per thread, the floor once), the card certificate's chain check
 * (cached per card afterwards) and the issuer authorisation (a signature and its check).
 */
function issuanceFloor(w: WorkDir, card: EticketCard): { perTicket: () => void; perBatch: () => void } {
  const suite = getSuite(w.config.suite);
  const authority = w.loadAuthoritySigner(PASSPHRASE);
  const s = card.persistent;
  const creds: CardCredentials = { suite: w.config.suite, serial: s.serial, encryptionCertificate: s.encCert, signingCertificate: s.signCert, identity: s.identity };
  const server = new AuthenticationServer(authority, w.cardTrust());
  // A real face and TF_V of this operator, bound to this card: the sizes the batch signs, seals and loads.
  const { faceEncoded, verificationCodeEncoded } = server.sign(new TicketServer(w.config.operator).createTicket({ serviceDate: '2030-01-15', train: 'G1', origin: 'BJS', destination: 'SHH', departure: 420, coach: '1', seat: '1A', fare: 55300, currency: 'CNY', passenger: 'PASSENGER 0' }), creds);
  const cardKey = w.cardTrust().encryptionKey(creds);
  const decrypter = suiteProvider(w.config.suite).decrypter(s.encKey!.privateKey);
  const bill = randomBytes(512);
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();
  return {
    perTicket: () => {
      const signature = authority.sign(verificationCodeMessage(faceEncoded));
      const sealed = seal(suite, cardKey, s.serial, encodeLoadPayload(faceEncoded, verificationCodeEncoded));
      randomBytes(16);
      sha(faceEncoded);
      authority.sign(bill);
      open(decrypter, suite.id, s.serial, sealed);
      if (!suite.verify(authority.publicKey, verificationCodeMessage(faceEncoded), signature)) throw new Error('floor: TF_V does not verify');
      sha(faceEncoded.subarray(0, 24));
    },
    perBatch: () => {
      // A fresh WorkDir, as a command starts with: its key store has not opened the key yet, its card trust has
      // checked no certificate yet, so this is the whole opening and the whole chain check a command does.
      const fresh = WorkDir.open(w.dir);
      fresh.loadAuthoritySigner(PASSPHRASE);
      fresh.cardTrust().encryptionKey(creds);
      const challenge = randomBytes(16);
      if (!suite.verify(authority.publicKey, challenge, authority.sign(challenge))) throw new Error('floor: issuer authorisation');
    },
  };
}

/** CPU seconds of this process's waited-for children so far (Linux /proc/self/stat cutime + cstime), or null. */
function childrenCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 16 and 17 of proc(5), counted from 1 with pid and comm first: here from 3 (state) on.
    return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** Time `fn` `n` times, ms each. */
function samples(n: number, fn: () => void): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export async function benchCliIssuance(quick: boolean, progress: (s: string) => void, loadavg: () => number[]): Promise<CliIssuanceBench> {
  const rows = quick ? 100 : 1000;
  // The command's time moves by about ±10 % from one run to the next on a shared machine: three batches, the median.
  const batches = quick ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), 'eticket-bench-cli-'));
  process.env.ETICKET_PGLITE_TEMPLATE ??= await pglitePrepareTemplate();
  try {
    progress(`CLI issuance: working directory, ${batches} card(s) (setup, not timed)`);
    eticket(dir, ['init', '--operator', 'CR']);
    const cards = Array.from({ length: batches }, (_, k) => `card${k + 1}.img`);
    for (const [k, card] of cards.entries()) {
      eticket(dir, ['card', 'create', card, '--capacity', String(rows * 700 + 64 * 1024)]);
      eticket(dir, ['card', 'personalize', '--card', card]);
      writeFileSync(join(dir, `batch${k + 1}.csv`), batchCsv(rows, k + 1));
    }
    const w = WorkDir.open(dir);
    // The floor's keys are the first card's: read them from its image while no CLI holds it.
    const card = EticketCard.open(new FileBackend(join(dir, cards[0]), false));
    const imageBefore = card.usedBytes;
    const floor = issuanceFloor(w, card);
    const rounds: number[] = [];
    const batchRounds: number[] = [];
    let floorCpuMicros = 0;
    let floorTickets = 0;
    const measureFloor = () => {
      floor.perTicket();
      const n = quick ? 20 : 100;
      const cpu0 = process.cpuUsage();
      rounds.push(...samples(n, floor.perTicket));
      const cpu = process.cpuUsage(cpu0);
      floorCpuMicros += cpu.user + cpu.system;
      floorTickets += n;
      batchRounds.push(...samples(3, floor.perBatch));
    };
    progress(`CLI issuance: crypto floor (before)`);
    measureFloor();
    const loadBefore = loadavg();
    const timed: { seconds: number; rowSpanSeconds: number; rows: number; cpu: number | null }[] = [];
    for (const [k, c] of cards.entries()) {
      progress(`CLI issuance: eticket issue --card ${c} --from batch${k + 1}.csv, ${rows} rows (${k + 1} of ${batches})`);
      const cpuBefore = childrenCpuSeconds();
      const run = await runBatch(dir, c, `batch${k + 1}.csv`);
      const cpuAfter = childrenCpuSeconds();
      if (run.summary.loaded !== rows) throw new Error(`bench: the batch loaded ${String(run.summary.loaded)} of ${rows} rows`);
      timed.push({ seconds: run.seconds, rowSpanSeconds: run.rowSpanSeconds, rows: run.rows, cpu: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore });
      progress(`CLI issuance: crypto floor (after batch ${k + 1})`);
      measureFloor();
    }
    const loadAfter = loadavg();
    const after = EticketCard.open(new FileBackend(join(dir, cards[0]), false));
    const floorMs = latency(rounds).medianMs + latency(batchRounds).medianMs / rows;
    const runs: CliIssuanceRun[] = timed.map((t) => ({ commandSeconds: t.seconds, rowSpanSeconds: t.rowSpanSeconds, commandCpuSeconds: t.cpu, ratioCommand: floorMs / ((t.seconds * 1000) / rows) }));
    const median = [...timed].sort((x, y) => x.seconds - y.seconds)[Math.floor(timed.length / 2)]!;
    const perCommand = (median.seconds * 1000) / rows;
    const perRow = (median.rowSpanSeconds * 1000) / Math.max(1, median.rows - 1);
    const commandCpuSeconds = median.cpu;
    // Per-batch steps spread over the rows, in wall time (their CPU share is below a microsecond a row).
    const cryptoFloorCpuMs = floorCpuMicros / 1000 / floorTickets + latency(batchRounds).medianMs / rows;
    return {
      rows,
      runs,
      commandSeconds: median.seconds,
      commandTicketsPerSecond: rows / median.seconds,
      rowsTicketsPerSecond: 1000 / perRow,
      cryptoFloorMs: floorMs,
      floorTicketsPerSecond: 1000 / floorMs,
      ratioCommand: floorMs / perCommand,
      ratioRows: floorMs / perRow,
      commandCpuSeconds,
      cryptoFloorCpuMs,
      ratioCommandCpu: commandCpuSeconds ? cryptoFloorCpuMs / ((commandCpuSeconds * 1000) / rows) : null,
      imageBytesPerTicket: (after.usedBytes - imageBefore) / rows,
      loadAverage: { before: loadBefore, after: loadAfter },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
