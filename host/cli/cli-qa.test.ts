// What integrators and QA engineers ran into (issue 13), through the real `eticket` process: service dates in the
// operator's time zone, the gate choosing the ticket that can pass, batches that say what happened.

import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/helpers/pcsc-stack.js';
import { cli, cliProcess, type CliEnv } from './run-cli.js';

let dir: string;
let env: CliEnv;

/** Bytes waiting to be read on the local TCP socket bound to `port` (/proc/net/tcp), undefined when there is none. */
function receiveQueue(port: number): number | undefined {
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length > 4 && Number.parseInt(cols[1]!.split(':')[1]!, 16) === port) return Number.parseInt(cols[4]!.split(':')[1]!, 16);
  }
  return undefined;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'eticket-cli-qa-'));
  env = { cwd: dir };
  const init = await cli(env, 'init', '--operator', 'CR', '--time-zone', 'Asia/Shanghai');
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
  const made = await Promise.all([cli(env, 'card', 'create', 'tz.img'), cli(env, 'card', 'create', 'two.img')]);
  expect(made.map((r) => r.code)).toEqual([0, 0]);
  const pers = await Promise.all([cli(env, 'card', 'personalize', '--card', 'tz.img'), cli(env, 'card', 'personalize', '--card', 'two.img')]);
  expect(pers.map((r) => r.stderr)).toEqual(['', '']);
}, 300_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('service dates in the operator time zone', () => {
  it('a UTC+8 operator: a ticket for 2026-12-01 is valid from local midnight and passes the gate at 07:30 local (23:30 UTC the day before)', async () => {
    const issued = await cli(env, '--json', 'issue', '--card', 'tz.img', '--service-date', '2026-12-01', '--train', 'G1', '--origin', 'BJS', '--destination', 'SHH');
    expect(issued.code).toBe(0);
    const tid = issued.json()[0].tid as string;
    const shown = await cli(env, '--json', 'verify', '--card', 'tz.img', '--tid', tid);
    expect(shown.json()[0]).toMatchObject({ ticket: { face: { serviceDate: '2026-12-01', validFrom: '2026-11-30T16:00:00Z', validUntil: '2026-12-01T20:00:00Z' } } });
    const gate = await cli(env, '--json', 'gate', '--card', 'tz.img', '--station', 'BJS', '--direction', 'entry', '--time', '2026-11-30T23:30:00Z');
    expect(gate.code).toBe(0);
    expect(gate.json()[0]).toMatchObject({ pass: true, tid });
  });

  it('--tz overrides the working directory: the same tap in UTC looks for 2026-11-30 and finds nothing (exit 6)', async () => {
    const gate = await cli(env, '--json', '--tz', 'UTC', 'gate', '--card', 'tz.img', '--station', 'BJS', '--direction', 'entry', '--time', '2026-11-30T23:31:00Z');
    expect(gate.code).toBe(6);
    expect(gate.json()[0]).toMatchObject({ pass: false, reason: 'not_found' });
  });

  it('an unknown time zone is a usage error (exit 1) naming it', async () => {
    const r = await cli(env, '--tz', 'Mars/Olympus', 'gate', '--card', 'tz.img', '--station', 'BJS', '--direction', 'entry');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown time zone "Mars\/Olympus"/);
  });
});

describe('the gate chooses the ticket that can pass', () => {
  it('two tickets for one train: after the first is used up, the second passes entry', async () => {
    const one = await cli(env, '--json', 'issue', '--card', 'two.img', '--service-date', '2026-12-02', '--train', 'G7', '--origin', 'BJS', '--destination', 'SHH', '--seat', '01A');
    const two = await cli(env, '--json', 'issue', '--card', 'two.img', '--service-date', '2026-12-02', '--train', 'G7', '--origin', 'BJS', '--destination', 'SHH', '--seat', '01B');
    expect([one.code, two.code]).toEqual([0, 0]);
    const [first, second] = [one.json()[0].tid, two.json()[0].tid];
    const tap = (direction: string, station: string, time: string) => cli(env, '--json', 'gate', '--card', 'two.img', '--station', station, '--direction', direction, '--train', 'G7', '--time', time);
    expect((await tap('entry', 'BJS', '2026-12-02T01:00:00Z')).json()[0]).toMatchObject({ pass: true, tid: first });
    expect((await tap('exit', 'SHH', '2026-12-02T05:00:00Z')).json()[0]).toMatchObject({ pass: true, tid: first });
    // The card still shows the used ticket first; the gate looks further and lets the second passenger in.
    const again = await tap('entry', 'BJS', '2026-12-02T05:10:00Z');
    expect(again.code).toBe(0);
    expect(again.json()[0]).toMatchObject({ pass: true, tid: second });
    // Both used: the first ticket's reason stands.
    await tap('exit', 'SHH', '2026-12-02T09:00:00Z');
    const none = await tap('entry', 'BJS', '2026-12-02T09:10:00Z');
    expect(none.code).toBe(6);
    expect(none.json()[0]).toMatchObject({ pass: false, reason: 'already_exited', tid: first });
  });
});

describe('batches say what happened', () => {
  const D = '2026-12-03';
  const rows = (r: { json: () => Record<string, unknown>[] }) => r.json().filter((x) => !x.summary);
  const summary = (r: { json: () => Record<string, unknown>[] }) => r.json().find((x) => x.summary);

  beforeAll(async () => {
    const made = await Promise.all([cli(env, 'card', 'create', 'b1.img'), cli(env, 'card', 'create', 'small1.img', '--capacity', '7600'), cli(env, 'card', 'create', 'big2.img')]);
    expect(made.map((r) => r.code)).toEqual([0, 0, 0]);
    const pers = await Promise.all(['b1.img', 'small1.img', 'big2.img'].map((c) => cli(env, 'card', 'personalize', '--card', c)));
    expect(pers.map((r) => r.stderr)).toEqual(['', '', '']);
  }, 300_000);

  it('the same tid twice with other content: the second row is refused (exit 4); with the same content it is already on card', async () => {
    writeFileSync(join(dir, 'dup.csv'), ['tid,serviceDate,train,passenger', `DUP-1,${D},G1,Li Wei`, `DUP-1,${D},G1,Wang Fang`, `DUP-2,${D},G1,Zhao Lei`, `DUP-2,${D},G1,Zhao Lei`].join('\n') + '\n');
    const r = await cli(env, '--json', 'issue', '--card', 'b1.img', '--from', 'dup.csv');
    expect(r.code).toBe(4);
    expect(rows(r)).toEqual([
      expect.objectContaining({ line: 2, status: 'loaded', tid: 'DUP-1' }),
      expect.objectContaining({ line: 3, status: 'failed', tid: 'DUP-1', error: expect.stringMatching(/tid DUP-1 is also on line 2 with other content/) }),
      expect.objectContaining({ line: 4, status: 'loaded', tid: 'DUP-2' }),
      expect.objectContaining({ line: 5, status: 'already_on_card', tid: 'DUP-2' }),
    ]);
    expect(summary(r)).toMatchObject({ done: [2, 4, 5], remaining: [3] });
  });

  it('a full card: the rest not attempted; re-run onto a second card, rows without tid done on the first are not issued again', async () => {
    // 30 rows: chunks of 8, 16 and 6 (cmd-issue FIRST_CHUNK): the second is issued while the first loads, so the
    // card fills with a chunk issued ahead, which must be withdrawn (else the re-run finds its rows sealed for card 1).
    const N = 30;
    writeFileSync(join(dir, 'twocards.csv'), ['serviceDate,train,seat', ...Array.from({ length: N }, (_, i) => `${D},K${i},${i}A`)].join('\n') + '\n');
    const one = await cli(env, '--json', 'issue', '--card', 'small1.img', '--from', 'twocards.csv');
    expect(one.code).toBe(4);
    const s1 = summary(one) as { done: number[]; remaining: number[]; notAttempted: number };
    expect(s1.done.length).toBeGreaterThan(0);
    expect(s1.remaining.length).toBeGreaterThan(1);
    expect(s1.notAttempted).toBe(s1.remaining.length - 1); // one row met the full card, the others were not tried
    const two = await cli(env, '--json', 'issue', '--card', 'big2.img', '--from', 'twocards.csv');
    expect(two.code).toBe(0);
    const byLine = new Map(rows(two).map((x) => [x.line, x]));
    for (const line of s1.done) expect(byLine.get(line)).toMatchObject({ status: 'issued_to_other_card', card: expect.stringMatching(/^[0-9A-F]{16}$/) });
    for (const line of s1.remaining) expect(byLine.get(line)).toMatchObject({ status: 'loaded' });
    // Each row is on exactly one card.
    const trains = async (card: string) => ((await cli(env, '--json', 'tickets', '--card', card)).json()[0].tickets as { face: { train: string } }[]).map((t) => t.face.train);
    const all = [...(await trains('small1.img')), ...(await trains('big2.img'))].filter((t) => t.startsWith('K'));
    expect(all.sort()).toEqual(Array.from({ length: N }, (_, i) => `K${i}`).sort());
    expect(summary(two)).toMatchObject({ remaining: [], done: Array.from({ length: N }, (_, i) => i + 2) });
  });

  it('a 150 MB field is one failed line with a clear reason, read in bounded memory (a 96 MB heap); the other rows load', async () => {
    const file = join(dir, 'huge.csv');
    const fd = openSync(file, 'w');
    writeSync(fd, `serviceDate,train,passenger\n${D},H1,Ok\n${D},H2,`);
    const block = 'x'.repeat(1 << 20);
    for (let i = 0; i < 150; i++) writeSync(fd, block);
    writeSync(fd, `\n${D},H3,Ok\n`);
    closeSync(fd);
    const r = await cli({ ...env, vars: { NODE_OPTIONS: '--max-old-space-size=96' } }, '--json', 'issue', '--card', 'b1.img', '--from', 'huge.csv');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(4);
    expect(rows(r)).toEqual([
      expect.objectContaining({ line: 2, status: 'loaded' }),
      expect.objectContaining({ line: 3, status: 'failed', error: expect.stringMatching(/line longer than 65536 characters/) }),
      expect.objectContaining({ line: 4, status: 'loaded' }),
    ]);
  }, 300_000);

  it('CSV on stdin (--from -) is told from JSON Lines by its first line; --format still decides when given', async () => {
    const csv = await cli({ ...env, stdin: `serviceDate,train\n${D},S1\n` }, '--json', 'issue', '--card', 'b1.img', '--from', '-');
    expect(csv.code).toBe(0);
    expect(rows(csv)).toEqual([expect.objectContaining({ line: 2, status: 'loaded' })]);
    const jsonl = await cli({ ...env, stdin: `{"serviceDate":"${D}","train":"S2"}\n` }, '--json', 'issue', '--card', 'b1.img', '--from', '-');
    expect(jsonl.code).toBe(0);
    expect(rows(jsonl)).toEqual([expect.objectContaining({ line: 1, status: 'loaded' })]);
    const forced = await cli({ ...env, stdin: `serviceDate,train\n${D},S3\n` }, '--json', 'issue', '--card', 'b1.img', '--from', '-', '--format', 'jsonl');
    expect(forced.code).toBe(4);
    expect(rows(forced)[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/not JSON/) });
  });

  /** `eticket --json issue … --from -` whose stdin is a TCP socket: the test writes rows to `sender`, and can reset it. */
  const socketStdin = async (...args: string[]) => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const stdin = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    stdin.pause(); // the eticket process reads this socket, never this one
    stdin.on('error', () => undefined);
    await new Promise<void>((r) => stdin.once('connect', r));
    const sender = await accepted;
    sender.on('error', () => undefined);
    const { child, exited, output } = cliProcess({ ...env, input: stdin }, '--json', 'issue', ...args, '--from', '-');
    const out = () => output().stdout;
    return {
      sender,
      closed: exited,
      out,
      err: () => output().stderr,
      lines: () => out().split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>),
      /** Until the eticket process has read everything sent (the socket's receive queue, /proc/net/tcp, is empty). */
      consumed: () => waitUntil(() => receiveQueue(stdin.localPort!) === 0, 60_000, 'eticket to read what was sent'),
      close: () => {
        child.kill('SIGKILL');
        stdin.destroy();
        server.close();
      },
    };
  };

  it('stdin a socket fed 50 rows, then reset by its sender: the rows read are issued and reported while the input waits, then one failed line and the summary say after which line and why (exit 4); the whole batch re-run issues only the rest', async () => {
    // 60 rows in all fit on a card (64 tickets); 50 go in before the reset.
    expect((await cli(env, 'card', 'create', 'rst.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'rst.img')).code).toBe(0);
    const N = 60;
    const all = Array.from({ length: N }, (_, i) => `${D},RST${i}`);
    const run = await socketStdin('--card', 'rst.img', '--batch', 'reset-batch');
    try {
      // 50 rows, then the connection reset once some of them are reported (the rest of the input never comes).
      run.sender.write(['serviceDate,train', ...all.slice(0, 50)].join('\n') + '\n');
      await waitUntil(() => run.lines().filter((l) => l.status === 'loaded').length >= 8, 120_000, 'the first rows to be reported');
      run.sender.resetAndDestroy();
      const code = await run.closed;
      expect(run.err()).toBe('');
      expect(code).toBe(4);
      const lines = run.lines();
      const done = lines.filter((x) => x.status === 'loaded');
      const last = done.at(-1)!.line as number;
      expect(done.map((x) => x.line)).toEqual(Array.from({ length: last - 1 }, (_, i) => i + 2));
      expect(lines.at(-2)).toEqual({ status: 'failed', error: expect.stringMatching(new RegExp(`^the batch input could not be read after line ${last}: read ECONNRESET; the rows after it were not seen`)) });
      // The failed line is no row: the counts are the rows'.
      expect(lines.at(-1)).toMatchObject({ summary: true, total: done.length, loaded: done.length, failed: 0, done: done.map((x) => x.line), remaining: [], inputUnreadAfterLine: last, inputError: 'read ECONNRESET' });
      // The whole batch again, under the same batch name: the rows done are found, the rest issued.
      writeFileSync(join(dir, 'reset.csv'), ['serviceDate,train', ...all].join('\n') + '\n');
      const again = await cli(env, '--json', 'issue', '--card', 'rst.img', '--from', 'reset.csv', '--batch', 'reset-batch');
      expect(again.code).toBe(0);
      const byStatus = (st: string) => rows(again).filter((x) => x.status === st).map((x) => x.line);
      expect(byStatus('already_on_card')).toEqual(done.map((x) => x.line));
      expect(byStatus('loaded')).toEqual(Array.from({ length: N + 1 - last }, (_, i) => last + 1 + i));
    } finally {
      run.close();
    }
  }, 300_000);

  it('stdin reset before its first row: exit 1, "standard input could not be read", nothing issued (no internal error)', async () => {
    const run = await socketStdin('--card', 'b1.img');
    try {
      run.sender.write('serviceDate,train\n');
      await run.consumed();
      run.sender.resetAndDestroy();
      expect(await run.closed).toBe(1);
      expect(run.out()).toBe('');
      expect(JSON.parse(run.err().trim())).toMatchObject({ ok: false, exitCode: 1, error: 'standard input could not be read: read ECONNRESET; nothing was issued' });
    } finally {
      run.close();
    }
  }, 120_000);

  it('rows fed to stdin every 180 ms are reported while they keep coming, each once and in file order (the chunks never fill)', async () => {
    expect((await cli(env, 'card', 'create', 'slow.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'slow.img')).code).toBe(0);
    const { child, exited: closed, output } = cliProcess({ ...env, input: 'pipe' }, '--json', 'issue', '--card', 'slow.img', '--from', '-');
    const reported = () => output().stdout.split('\n').filter((l) => l.includes('"status":"loaded"')).length;
    try {
      // Chunks of 8, 16 and 32 rows with two issued ahead: waiting for chunks, the first row would be reported after the
      // 56th. Rows come every 180 ms (less than INPUT_IDLE_MS between two), at most 54 of them.
      child.stdin!.write('serviceDate,train\n');
      let written = 0;
      let reportedWhileWriting = 0;
      while (written < 54) {
        child.stdin!.write(`${D},SLOW${written}\n`);
        written++;
        await new Promise((r) => setTimeout(r, 180));
        reportedWhileWriting = reported();
        if (reportedWhileWriting >= 3 && written >= 10) break;
      }
      expect(reportedWhileWriting, `rows reported while ${written} were written every 180 ms`).toBeGreaterThanOrEqual(3);
      child.stdin!.end();
      expect(await closed).toBe(0);
      const lines = output().stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.filter((x) => !x.summary).map((x) => [x.line, x.status])).toEqual(Array.from({ length: written }, (_, i) => [i + 2, 'loaded']));
    } finally {
      child.kill('SIGKILL');
    }
  }, 300_000);

  it('a directory, an empty file and a header without rows are usage errors (exit 1) saying so, under --json as JSON', async () => {
    mkdirSync(join(dir, 'adir'), { recursive: true });
    writeFileSync(join(dir, 'empty.csv'), '');
    writeFileSync(join(dir, 'header.csv'), 'serviceDate,train\n');
    const [d, e, h] = await Promise.all([
      cli(env, 'issue', '--card', 'b1.img', '--from', 'adir'),
      cli(env, 'issue', '--card', 'b1.img', '--from', 'empty.csv'),
      cli(env, '--json', 'issue', '--card', 'b1.img', '--from', 'header.csv'),
    ]);
    expect([d.code, e.code, h.code]).toEqual([1, 1, 1]);
    expect(d.stderr).toMatch(/adir is a directory/);
    expect(e.stderr).toMatch(/empty\.csv holds no tickets/);
    expect(JSON.parse(h.stderr.trim())).toMatchObject({ ok: false, exitCode: 1, error: expect.stringMatching(/header\.csv holds no tickets/) });
  });
});

describe('delete and rebook are idempotent', () => {
  it('a retried delete exits 0 saying the ticket was already deleted; a retried rebook exits 0 naming the replacement on the card', async () => {
    const made = await cli(env, 'card', 'create', 'idem.img');
    expect(made.code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'idem.img')).code).toBe(0);
    for (const tid of ['ID-DEL', 'ID-OLD']) expect((await cli(env, 'issue', '--card', 'idem.img', '--service-date', '2026-12-04', '--train', 'G3', '--tid', tid)).code).toBe(0);
    const del = await cli(env, '--json', 'delete', '--card', 'idem.img', '--tid', 'ID-DEL');
    expect(del.code).toBe(0);
    const again = await cli(env, '--json', 'delete', '--card', 'idem.img', '--tid', 'ID-DEL');
    expect(again.code).toBe(0);
    expect(again.json()[0]).toMatchObject({ ok: true, alreadyDeleted: true, tid: 'ID-DEL', receiptStored: true });
    const rebook = ['rebook', '--card', 'idem.img', '--tid', 'ID-OLD', '--service-date', '2026-12-05', '--new-tid', 'ID-NEW'];
    expect((await cli(env, '--json', ...rebook)).code).toBe(0);
    const retried = await cli(env, '--json', ...rebook);
    expect(retried.code).toBe(0);
    expect(retried.json()[0]).toMatchObject({ ok: true, alreadyRebooked: true, tid: 'ID-OLD', replacement: 'ID-NEW' });
    // A TID the card never held is still "no such ticket" (exit 2).
    const unknown = await cli(env, 'delete', '--card', 'idem.img', '--tid', 'NEVER');
    expect(unknown.code).toBe(2);
  }, 300_000);

  it('a rebook the back office refuses (the new TID is taken) changes nothing on the card: exit 1, one line, the old ticket still valid; the next rebook keeps the deletion receipt in the store', async () => {
    expect((await cli(env, 'card', 'create', 'keep.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'keep.img')).code).toBe(0);
    for (const tid of ['RB-KEEP', 'RB-BUSY']) expect((await cli(env, 'issue', '--card', 'keep.img', '--service-date', '2026-12-06', '--train', 'G9', '--tid', tid)).code).toBe(0);
    const states = async () => Object.fromEntries(((await cli(env, '--json', 'tickets', '--card', 'keep.img')).json()[0].tickets as { face: { tid: string }; usage: { state: string } }[]).map((t) => [t.face.tid, t.usage.state]));
    const before = await states();
    expect(Object.keys(before).sort()).toEqual(['RB-BUSY', 'RB-KEEP']);

    const refused = await cli(env, 'rebook', '--card', 'keep.img', '--tid', 'RB-KEEP', '--service-date', '2026-12-07', '--new-tid', 'RB-BUSY');
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/TID RB-BUSY was already issued.*nothing changed on the card: RB-KEEP is still valid/);
    expect(await states()).toEqual(before);
    // The old ticket still verifies (VERIFY on the card), and still passes as it did.
    expect((await cli(env, 'verify', '--card', 'keep.img', '--tid', 'RB-KEEP')).code).toBe(0);

    const done = await cli(env, '--json', 'rebook', '--card', 'keep.img', '--tid', 'RB-KEEP', '--service-date', '2026-12-07', '--new-tid', 'RB-MOVED');
    expect(done.code, done.stderr).toBe(0);
    expect(done.json()[0]).toMatchObject({ ok: true, deleted: { tid: 'RB-KEEP' }, issued: { face: { tid: 'RB-MOVED', serviceDate: '2026-12-07' } } });
    expect(Object.keys(await states()).sort()).toEqual(['RB-BUSY', 'RB-MOVED']);
    // The card's deletion receipt is in the back office, not only in this command's output.
    const again = await cli(env, '--json', 'delete', '--card', 'keep.img', '--tid', 'RB-KEEP');
    expect(again.json()[0]).toMatchObject({ ok: true, alreadyDeleted: true, receiptStored: true });
  }, 300_000);
});
