// The gate journal on disk: group commit, bounded size, acknowledgement and segment removal, recovery; a power
// cut injected at every write point (like the card's NVM tearing test) and kill -9 of a real writing process.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { hex } from '../sdk/bytes.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { GENESIS, verifyChain, verifyCheckpoint, type TapFields } from '../sdk/gate-journal.js';
import { tlv } from '../sdk/tlv.js';
import { FaultyJournalBackend, FileJournalBackend, GateJournal, JournalFaults, JournalPowerCut, MemoryJournalBackend } from './journal.js';

const dir = mkdtempSync(join(tmpdir(), 'eticket-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const key = RsaPrivateKey.generate(2048);

function tap(gateId: string, i: number): TapFields {
  return { gateId, time: 1_900_000_000_000 + i, direction: i % 2 ? 'exit' : 'entry', pass: true, station: 'A01', mode: 'pki', operator: 'CR', tid: `T${i}`, cardSerial: new Uint8Array(8).fill(i & 0xff), counter: i, receipt: tlv(0xb4, new Uint8Array(randomBytes(200))), denylistVersion: 1 };
}

/** Every durable record of `gate` still in the journal, checked to form one chain from the acknowledged head. */
function chainOf(j: GateJournal, gate: string) {
  const h = j.head(gate);
  const records = j.readRecords(gate, h.acked + 1, 1_000_000);
  if (records.length) verifyChain(records, { gateId: gate, seq: h.seq, head: h.hash, time: 0, signature: new Uint8Array(0) });
  return { ...h, records };
}

describe('gate journal', () => {
  it('taps of several gates that arrive together share one write and one fdatasync (group commit)', async () => {
    const j = GateJournal.open(new MemoryJournalBackend());
    const done = await Promise.all(['G1', 'G2', 'G3'].flatMap((g) => [1, 2, 3].map((i) => j.append(tap(g, i)))));
    expect(done.map((r) => `${r.gateId}:${r.seq}`)).toEqual(['G1:1', 'G1:2', 'G1:3', 'G2:1', 'G2:2', 'G2:3', 'G3:1', 'G3:2', 'G3:3']);
    expect(j.stats().flushes).toBe(1);
    for (const g of ['G1', 'G2', 'G3']) expect(chainOf(j, g).records.map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  it('bounded: when unacknowledged records fill the budget, reserve() refuses; an acknowledgement frees the uploaded segments', async () => {
    const backend = new MemoryJournalBackend();
    const j = GateJournal.open(backend, { maxBytes: 64 * 1024, segmentBytes: 8 * 1024 });
    let n = 0;
    while (j.reserve()) await j.append(tap('G1', ++n));
    expect(n).toBeGreaterThan(20);
    expect(j.stats().refusedFull).toBe(1);
    expect(j.stats().bytes).toBeLessThanOrEqual(64 * 1024);
    const segments = backend.list().filter((f) => f.startsWith('seg-')).length;
    expect(await j.ack('G1', n - 1)).toBe(true);
    expect(backend.list().filter((f) => f.startsWith('seg-')).length).toBe(1); // all but the newest went
    expect(segments).toBeGreaterThan(1);
    expect(j.reserve()).toBe(true);
    await j.append(tap('G1', ++n));
    // Reopened, the chain continues from the acknowledged head and the unacknowledged records are all there.
    const again = GateJournal.open(backend);
    expect(chainOf(again, 'G1')).toMatchObject({ seq: n, acked: n - 2 });
    expect(chainOf(again, 'G1').records.map((r) => r.seq)).toEqual([n - 1, n]);
  });

  it('checkpoints are signed over the durable head and survive reopening', async () => {
    const backend = new MemoryJournalBackend();
    const j = GateJournal.open(backend);
    for (let i = 1; i <= 4; i++) await j.append(tap('G1', i));
    const cp = await j.checkpoint('G1', key);
    expect(cp).toMatchObject({ gateId: 'G1', seq: 4 });
    verifyCheckpoint(cp!, { suite: 'rsa', publicKey: key.publicKey });
    verifyChain(j.readRecords('G1', 1, 10), cp!);
    const entries = GateJournal.readEntries(backend).entries;
    expect(entries.filter((e) => e.kind === 'checkpoint')).toHaveLength(1);
  });

  it('a failed write stops the journal (no gap in the chain can follow); reopening recovers what landed', async () => {
    const inner = new MemoryJournalBackend();
    const faults = new JournalFaults();
    const j = GateJournal.open(new FaultyJournalBackend(inner, faults));
    await j.append(tap('G1', 1));
    faults.cutAt = faults.writes; // the next write fails
    await expect(j.append(tap('G1', 2))).rejects.toBeInstanceOf(JournalPowerCut);
    expect(j.reserve()).toBe(false);
    await expect(j.append(tap('G1', 3))).rejects.toThrow(/failed earlier/);
    const again = GateJournal.open(inner);
    expect(chainOf(again, 'G1').records.map((r) => r.seq)).toEqual([1]);
  });
});

describe('delayed acknowledgements (ackDelayMs)', () => {
  it('a confirmation counts at once; the state file and the segment removal wait, and acknowledgements within the delay share one write', async () => {
    const backend = new MemoryJournalBackend();
    const faults = new JournalFaults();
    const j = GateJournal.open(new FaultyJournalBackend(backend, faults), { maxBytes: 64 * 1024, segmentBytes: 8 * 1024, ackDelayMs: 60_000 });
    for (let i = 1; i <= 40; i++) await j.append(tap(i % 2 ? 'G1' : 'G2', i));
    const segments = backend.list().filter((f) => f.startsWith('seg-')).length;
    expect(segments).toBeGreaterThan(1);
    const before = faults.writes;
    vi.useFakeTimers();
    try {
      const a = j.ack('G1', 20);
      await vi.advanceTimersByTimeAsync(30_000);
      const b = j.ack('G2', 20);
      await vi.advanceTimersByTimeAsync(29_000);
      // Confirmed now (the next upload starts after it), not yet on disk: a reopened copy would upload them again.
      expect(j.head('G1')).toMatchObject({ acked: 0, confirmed: 20 });
      expect(j.head('G2')).toMatchObject({ acked: 0, confirmed: 20 });
      expect(GateJournal.readEntries(backend).state.gates).toEqual({});
      expect(faults.writes).toBe(before);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await Promise.all([a, b])).toEqual([true, true]);
    } finally {
      vi.useRealTimers();
    }
    expect(faults.writes - before, 'one state write for both, plus the segments removed').toBe(1 + segments - 1);
    expect(j.head('G1')).toMatchObject({ acked: 20, confirmed: 20 });
    expect(GateJournal.readEntries(backend).state.gates).toMatchObject({ G1: { acked: 20 }, G2: { acked: 20 } });
    expect(backend.list().filter((f) => f.startsWith('seg-')).length).toBe(1);
    await j.close();
  });
});

describe('journal tearing: a power cut at every write point', () => {
  /**
   * Appends for two gates (one at a time, then several together), checkpoints, acknowledgements and segment
   * rotations. `opened` collects the records whose append resolved: the taps a gate acted on.
   */
  async function scenario(j: GateJournal, opened: Map<string, Set<number>>, acked: Map<string, number>) {
    const note = (g: string, s: number) => (opened.get(g) ?? opened.set(g, new Set()).get(g)!).add(s);
    for (let i = 1; i <= 6; i++) note(i % 2 ? 'G1' : 'G2', (await j.append(tap(i % 2 ? 'G1' : 'G2', i))).seq);
    await j.checkpoint('G1', key);
    await j.ack('G1', 2);
    acked.set('G1', 2);
    const together = await Promise.all([7, 8, 9, 10].map((i) => j.append(tap(i % 2 ? 'G1' : 'G2', i))));
    for (const r of together) note(r.gateId, r.seq);
    await j.ack('G2', 4);
    acked.set('G2', 4);
    for (let i = 11; i <= 16; i++) note('G1', (await j.append(tap('G1', i))).seq);
    await j.ack('G1', 9);
    acked.set('G1', 9);
    for (let i = 17; i <= 19; i++) note('G2', (await j.append(tap('G2', i))).seq);
  }

  it.each([
    ['acknowledgements written at once', { segmentBytes: 1500, maxBytes: 256 * 1024 }],
    ['acknowledgements delayed (ackDelayMs)', { segmentBytes: 1500, maxBytes: 256 * 1024, ackDelayMs: 3 }],
  ])('every acted-on record survives, intact and chained; the journal goes on after recovery (%s)', async (_, options) => {
    const clean = new JournalFaults();
    await scenario(GateJournal.open(new FaultyJournalBackend(new MemoryJournalBackend(), clean), options), new Map(), new Map());
    expect(clean.writes).toBeGreaterThan(15);
    for (let cut = 0; cut < clean.writes; cut++) {
      const inner = new MemoryJournalBackend();
      const opened = new Map<string, Set<number>>();
      const acked = new Map<string, number>();
      const j = GateJournal.open(new FaultyJournalBackend(inner, new JournalFaults(cut)), options);
      await expect(scenario(j, opened, acked), `cut at write ${cut}`).rejects.toBeInstanceOf(JournalPowerCut);
      const again = GateJournal.open(inner, options);
      for (const [gate, seqs] of opened) {
        const c = chainOf(again, gate);
        expect(c.acked, `cut ${cut}: ${gate} acknowledgement kept`).toBeGreaterThanOrEqual(acked.get(gate) ?? 0);
        const present = new Set([...c.records.map((r) => r.seq)]);
        for (const s of seqs) expect(s <= c.acked || present.has(s), `cut ${cut}: ${gate} record ${s} lost`).toBe(true);
        // The chain goes on: a new record follows the recovered head.
        const next = await again.append(tap(gate, 99));
        expect(next.seq).toBe(c.seq + 1);
        expect(hex(next.prev)).toBe(hex(c.seq === 0 ? GENESIS : c.hash));
      }
    }
  });

  it('kill -9 of a process writing a journal file, at random moments: every record it reported durable is there', async () => {
    const jdir = join(dir, 'killed');
    const script = join(dir, 'writer.mts');
    const journalModule = fileURLToPath(new URL('./journal.ts', import.meta.url));
    writeFileSync(
      script,
      `import { GateJournal } from ${JSON.stringify(journalModule)};
       const j = GateJournal.openDir(process.argv[2], { segmentBytes: 4096 });
       const start = j.head('K1').seq;
       for (let i = start + 1; ; i++) {
         const r = await j.append({ gateId: 'K1', time: Date.now(), direction: 'entry', pass: false, reason: 'not_found', station: 'A01', mode: 'pki', denylistVersion: 0 });
         process.stdout.write('durable ' + r.seq + '\\n');
         if (i % 25 === 0) await j.ack('K1', r.seq - 10);
       }`,
    );
    let reported = 0;
    for (let round = 0; round < 5; round++) {
      // node itself with tsx's loader (not the tsx wrapper): the signal must reach the writing process.
      const child = spawn(process.execPath, ['--import', 'tsx', script, jdir], { stdio: ['ignore', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('..', import.meta.url)) });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      const signal = await new Promise<string | null>((resolve) => {
        const check = setInterval(() => {
          // Let it write a while (a different amount each round), then kill it mid-stream.
          if ((out.match(/durable/g) ?? []).length > 40 + round * 37) {
            clearInterval(check);
            child.kill('SIGKILL');
          }
        }, 5);
        child.on('exit', (_code, sig) => {
          clearInterval(check);
          resolve(sig);
        });
      });
      const seqs = [...out.matchAll(/durable (\d+)/g)].map((m) => Number(m[1]));
      expect(signal, `round ${round}: the writer ran until killed`).toBe('SIGKILL');
      expect(seqs.length).toBeGreaterThan(40);
      reported = Math.max(reported, ...seqs);
      const j = GateJournal.openDir(jdir);
      const c = chainOf(j, 'K1');
      expect(c.seq, `round ${round}: records reported durable are present`).toBeGreaterThanOrEqual(reported);
      await j.close();
    }
  });
});
