// The `eticket` CLI as integrators run it: each test spawns `node bin/eticket.mjs` (the compiled CLI) in a
// temporary working directory and checks exit status and output, bad input included (the issue's "done when" list).
// At most CLI_PARALLELISM processes run at once (run-cli.ts), however many a test starts together.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pcscStack } from '../../test/helpers/pcsc-stack.js';
import { fromHex } from '../../sdk/bytes.js';
import { symTransactionFromJson, verifySymReceipt } from '../../sdk/roles/sym-receipts.js';
import { commandPaths, EXIT } from './main.js';
import { cli, cliProcess, type CliEnv } from './run-cli.js';
import { WorkDir } from './workdir.js';

const pcscUp = (() => {
  try {
    return pcscStack().ok;
  } catch {
    return false; // ETICKET_PCSC=1 without a stack: cli-pcsc.test.ts reports it
  }
})();

const DATE = '2030-01-15';
const AT = (time: string) => ['--time', `${DATE}T${time}Z`];

let dir: string;
let env: CliEnv;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'eticket-cli-'));
  env = { cwd: dir };
  const init = await cli(env, 'init', '--operator', 'CR');
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
  // Two cards made in parallel: a roomy one and one that holds only a couple of tickets.
  const made = await Promise.all([cli(env, 'card', 'create', 'card.img'), cli(env, 'card', 'create', 'small.img', '--capacity', '7600')]);
  expect(made.map((r) => r.code)).toEqual([0, 0]);
  const pers = await Promise.all([cli(env, 'card', 'personalize', '--card', 'card.img'), cli(env, 'card', 'personalize', '--card', 'small.img')]);
  expect(pers.map((r) => r.stderr)).toEqual(['', '']);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('help and usage', () => {
  // Every command the program declares, so that a new one cannot ship without its help and example.
  const commands = [[], ...commandPaths()];

  it('every command has --help with an example, exit 0', async () => {
    const results = await Promise.all(commands.map((c) => cli(env, ...c, '--help')));
    results.forEach((r, i) => {
      expect(r.code, commands[i].join(' ')).toBe(0);
      expect(r.stdout, commands[i].join(' ')).toMatch(/Example/);
    });
  });

  it('every exit code the CLI uses is in docs/cli.md\'s table and in --help, and no other', async () => {
    const docs = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    const table = docs.slice(docs.indexOf('## Exit codes'), docs.indexOf('\n\n', docs.indexOf('| code | meaning |')));
    const documented = [...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    const codes = Object.values(EXIT).sort((a, b) => a - b);
    expect(documented).toEqual(codes);
    const help = (await cli(env, '--help')).stdout;
    for (const c of codes.filter((c) => c !== 0)) expect(help).toMatch(new RegExp(`\\b${c} [a-z]`));
  });

  it('an unknown option or command is a usage error (1)', async () => {
    const [opt, cmd] = await Promise.all([cli(env, 'tickets', '--card', 'card.img', '--bogus'), cli(env, 'frobnicate')]);
    expect(opt.code).toBe(1);
    expect(opt.stderr).toMatch(/unknown option '--bogus'/);
    expect(cmd.code).toBe(1);
  });

  it('a directory that is not a working directory says to run init (1)', async () => {
    const r = await cli({ cwd: dir, home: join(dir, 'nowhere') }, 'tickets', '--card', 'card.img');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not an eticket working directory.*eticket init/);
  });
});

describe('init', () => {
  it('writes public files in the clear and private keys encrypted', () => {
    for (const f of ['eticket.json', 'ca.crt', 'authority.pub', 'terminal.pub']) expect(existsSync(join(dir, f)), f).toBe(true);
    for (const k of ['ca', 'authority', 'terminal-encryption', 'terminal-signature']) {
      // One KDF for every secret: RSA keys are in the same scrypt + AES-256-GCM container as the others.
      expect(JSON.parse(readFileSync(join(dir, 'keys', `${k}.secret.json`), 'utf8'))).toMatchObject({ kind: 'rsa-private-pkcs8', kdf: { name: 'scrypt', N: 32768, r: 8, p: 1 }, cipher: 'aes-256-gcm' });
      expect(statSync(join(dir, 'keys', `${k}.secret.json`)).mode & 0o777).toBe(0o600);
    }
    expect(statSync(join(dir, 'keys')).mode & 0o777).toBe(0o700);
    const config = JSON.parse(readFileSync(join(dir, 'eticket.json'), 'utf8')) as { checkingMasterKey: { version: number; keyId: string } };
    expect(config.checkingMasterKey).toMatchObject({ version: 1, keyId: expect.stringMatching(/^[0-9A-F]{16}$/) });
    expect(JSON.parse(readFileSync(join(dir, 'keys', 'checking-master-v1.secret.json'), 'utf8'))).toMatchObject({ kind: 'aes128-checking-master', cipher: 'aes-256-gcm' });
  });

  it('refuses to overwrite a working directory, and needs a passphrase off a terminal (1)', async () => {
    const other = mkdtempSync(join(tmpdir(), 'eticket-cli-np-'));
    try {
      const [again, nopass] = await Promise.all([cli(env, 'init'), cli({ cwd: other, passphrase: null }, 'init')]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already an eticket working directory/);
      expect(nopass.code).toBe(1);
      expect(nopass.stderr).toMatch(/ETICKET_PASSPHRASE/);
      expect(existsSync(join(other, 'eticket.json'))).toBe(false);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('a wrong passphrase is exit 5 with one readable line; --debug adds the stack', async () => {
    const [plain, debug] = await Promise.all([
      cli({ ...env, passphrase: 'wrong' }, 'tickets', '--card', 'card.img'),
      cli({ ...env, passphrase: 'wrong' }, '--debug', 'tickets', '--card', 'card.img'),
    ]);
    expect(plain.code).toBe(5);
    expect(plain.stderr.trim().split('\n')).toHaveLength(1);
    expect(plain.stderr).toMatch(/wrong passphrase.*ETICKET_PASSPHRASE/);
    expect(debug.code).toBe(5);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });
});

describe('card images', () => {
  it('card info reports a personalised card; --json carries the credentials', async () => {
    const r = await cli(env, '--json', 'card', 'info', '--card', 'card.img');
    expect(r.code).toBe(0);
    const info = r.json()[0] as { lifecycle: string; serial: string; credentials: { encryptionCertificate: string }; installedKeys: unknown[] };
    expect(info.lifecycle).toBe('OPERATIONAL');
    expect(info.serial).toMatch(/^[0-9A-F]{16}$/);
    expect(info.credentials.encryptionCertificate).toMatch(/^30/);
    expect(info.installedKeys).toEqual([
      { kind: 'authority', keyId: expect.any(String) },
      { kind: 'terminal', keyId: expect.any(String) },
      { kind: 'checking (sym)', keyId: JSON.parse(readFileSync(join(dir, 'eticket.json'), 'utf8')).checkingMasterKey.keyId },
    ]);
  });

  it('an image that does not exist is a usage error (1); a corrupt one a card fault (3)', async () => {
    writeFileSync(join(dir, 'corrupt.img'), 'not a card at all');
    const [missing, corrupt, create] = await Promise.all([
      cli(env, 'card', 'info', '--card', 'nope.img'),
      cli(env, 'tickets', '--card', 'corrupt.img'),
      cli(env, 'card', 'create', 'card.img'),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.img does not exist: create one with `eticket card create nope\.img`/);
    expect(corrupt.code).toBe(3);
    expect(corrupt.stderr).toMatch(/corrupt\.img cannot be used/);
    expect(create.code).toBe(1);
    expect(create.stderr).toMatch(/already exists/);
  });

  // With the PC/SC stack up, cli-pcsc.test.ts checks this under the vpcd lock (pcscd is shared with other tests).
  it.skipIf(pcscUp)('an unknown reader is a reader error (3) without pcscd too', async () => {
    const r = await cli(env, 'tickets', '--reader', 'No Such Reader 99');
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no PC\/SC reader matches|PC\/SC (service|binding)/);
  });

  it('personalising a card twice is refused', async () => {
    const r = await cli(env, 'card', 'personalize', '--card', 'card.img');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already personalised/);
  });
});

describe('batch issuance', () => {
  const csv = [
    'tid,serviceDate,train,origin,destination,departure,seat,fare,currency,passenger',
    `B1,${DATE},G1,BJS,SHH,09:00,12A,55300,CNY,"Li, Wei"`,
    `,${DATE},G3,BJS,SHH,10:30,1F,55300,CNY,"Zhang ""Z"" San"`,
    `B3,2030-13-01,G5,BJS,SHH,,,,,`,
    `B4,${DATE},G7,BJS,"SH"H,,,,,`,
    `B5,${DATE},G9,BJS,SHH,,,,,A passenger name far longer than thirty-two bytes`,
    `B6,${DATE},L2,SHH,PDX,,,700,CNY,"Two\r\nLines"`,
    `B7,${DATE},L3,SHH,PDX,,,700,CNY,`,
  ].join('\r\n');

  it('reports bad lines with number and reason, loads the rest, exit 4; a re-run duplicates nothing', async () => {
    writeFileSync(join(dir, 'batch.csv'), csv);
    const first = await cli(env, '--json', 'issue', '--card', 'card.img', '--from', 'batch.csv');
    expect(first.code).toBe(4);
    const rows = first.json();
    const byLine = new Map(rows.filter((r) => !r.summary).map((r) => [r.line, r]));
    expect(byLine.get(2)).toMatchObject({ status: 'loaded', tid: 'B1' });
    expect(byLine.get(3)).toMatchObject({ status: 'loaded' });
    expect(byLine.get(4)).toMatchObject({ status: 'failed', error: expect.stringMatching(/not a date/) });
    expect(byLine.get(5)).toMatchObject({ status: 'failed', error: expect.stringMatching(/closing quote/) });
    expect(byLine.get(6)).toMatchObject({ status: 'failed', error: expect.stringMatching(/passenger/) });
    // A quoted line break: the record starts on line 7, so the next one is on line 9.
    expect(byLine.get(7)).toMatchObject({ status: 'loaded', tid: 'B6' });
    expect(byLine.get(9)).toMatchObject({ status: 'loaded', tid: 'B7' });
    expect(rows.at(-1)).toMatchObject({ summary: true, total: 7, loaded: 4, failed: 3 });
    const generated = byLine.get(3)!.tid;

    const again = await cli(env, '--json', 'issue', '--card', 'card.img', '--from', 'batch.csv');
    expect(again.code).toBe(4);
    const rerun = new Map(again.json().filter((r) => !r.summary).map((r) => [r.line, r]));
    expect(rerun.get(2)).toMatchObject({ status: 'already_on_card', tid: 'B1' });
    expect(rerun.get(3)).toMatchObject({ status: 'already_on_card', tid: generated });

    const list = await cli(env, '--json', 'tickets', '--card', 'card.img');
    expect(list.code).toBe(0);
    const tids = (list.json()[0].tickets as { face: { tid: string; passenger?: string } }[]).map((t) => t.face.tid);
    expect(tids.sort()).toEqual(['B1', 'B6', 'B7', generated].sort());
  });

  it('text mode prints one line per ticket and a summary', async () => {
    writeFileSync(join(dir, 'more.jsonl'), `{"tid":"J1","serviceDate":"${DATE}","train":"J9","origin":"BJS","kind":"rail"}\nnot json\n\n{"serviceDate":"${DATE}","bogus":1}\n`);
    const r = await cli(env, 'issue', '--card', 'card.img', '--from', 'more.jsonl');
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/line 1: loaded J1/);
    expect(r.stdout).toMatch(/line 2: FAILED: not JSON/);
    expect(r.stdout).toMatch(/line 4: FAILED: unknown field "bogus"/);
    expect(r.stdout).toMatch(/3 ticket\(s\): 1 loaded, 0 already on card, 0 sealed, 2 failed/);
  });

  it('a TID issued to another card is refused for this one', async () => {
    const r = await cli(env, '--json', 'issue', '--card', 'small.img', '--service-date', DATE, '--tid', 'B1');
    expect(r.code).toBe(1);
    expect(r.json()[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/already issued to card/) });
  });

  it('a full card: NOT_ENOUGH_MEMORY once, the rest of the batch not attempted, exit 4', async () => {
    writeFileSync(join(dir, 'full.csv'), ['serviceDate,train', ...Array.from({ length: 5 }, (_, i) => `${DATE},F${i}`)].join('\n') + '\n');
    const r = await cli(env, '--json', 'issue', '--card', 'small.img', '--from', 'full.csv');
    expect(r.code).toBe(4);
    const rows = r.json().filter((x) => !x.summary);
    expect(rows).toHaveLength(5);
    expect(rows[0]).toMatchObject({ status: 'loaded' });
    const full = rows.findIndex((x) => x.status === 'failed');
    expect(rows[full]).toMatchObject({ sw: '6A84', error: expect.stringMatching(/NOT_ENOUGH_MEMORY.*card is full/) });
    for (const x of rows.slice(full + 1)) expect(x).toMatchObject({ status: 'not_attempted', error: expect.stringMatching(/card is full/) });
    const one = await cli(env, 'issue', '--card', 'small.img', '--service-date', DATE, '--train', 'X');
    expect(one.code).toBe(2);
    expect(one.stderr).toMatch(/card is full/);
  });

  it('a card full in the first chunk while later chunks are issued ahead: every row reported once, in file order, the summary last', async () => {
    // 60 rows: chunks of 8, 16 and 32 are under way when the first one finds the card full, and rows after them are read.
    writeFileSync(join(dir, 'full60.csv'), ['serviceDate,train', ...Array.from({ length: 60 }, (_, i) => `${DATE},G${i}`)].join('\n') + '\n');
    const r = await cli(env, '--json', 'issue', '--card', 'small.img', '--from', 'full60.csv');
    expect(r.code).toBe(4);
    const out = r.json();
    expect(out.at(-1)).toMatchObject({ summary: true, total: 60 });
    const rows = out.slice(0, -1);
    expect(rows.map((x) => x.line)).toEqual(Array.from({ length: 60 }, (_, i) => i + 2));
    const full = rows.findIndex((x) => x.status === 'failed');
    expect(full).toBeLessThan(8);
    expect(rows[full]).toMatchObject({ sw: '6A84' });
    for (const x of rows.slice(full + 1)) expect(x).toMatchObject({ status: 'not_attempted', error: expect.stringMatching(/card is full/) });
  });

  it('a batch with tids onto a card that fills, re-run onto a second card: the withdrawn rows are issued again there (their next issuance), exit 0; every row on exactly one card', async () => {
    const made = await Promise.all([cli(env, 'card', 'create', 'tidfull.img', '--capacity', '7600'), cli(env, 'card', 'create', 'tidnext.img')]);
    expect(made.map((r) => r.code)).toEqual([0, 0]);
    const pers = await Promise.all([cli(env, 'card', 'personalize', '--card', 'tidfull.img'), cli(env, 'card', 'personalize', '--card', 'tidnext.img')]);
    expect(pers.map((r) => r.code)).toEqual([0, 0]);
    const tids = Array.from({ length: 5 }, (_, i) => `RT${i}`);
    writeFileSync(join(dir, 'tids-full.csv'), ['tid,serviceDate,train,fare,currency', ...tids.map((t) => `${t},${DATE},${t},700,CNY`)].join('\n') + '\n');
    const first = await cli(env, '--json', 'issue', '--card', 'tidfull.img', '--from', 'tids-full.csv');
    expect(first.code).toBe(4);
    const rows = first.json().filter((x) => !x.summary);
    const full = rows.findIndex((x) => x.status === 'failed');
    expect(full).toBeGreaterThan(0);
    expect(rows[full]).toMatchObject({ sw: '6A84' });
    const onFull = rows.filter((x) => x.status === 'loaded').map((x) => x.tid);
    expect(onFull).toEqual(tids.slice(0, full));

    const again = await cli(env, '--json', 'issue', '--card', 'tidnext.img', '--from', 'tids-full.csv');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    const rerun = again.json();
    expect(rerun.slice(0, -1).map((x) => [x.tid, x.status])).toEqual(tids.map((t, i) => [t, i < full ? 'issued_to_other_card' : 'loaded']));
    expect(rerun.at(-1)).toMatchObject({ summary: true, total: 5, failed: 0, remaining: [] });
    const listed = await Promise.all(['tidfull.img', 'tidnext.img'].map((c) => cli(env, '--json', 'tickets', '--card', c)));
    const [a, b] = listed.map((l) => (l.json()[0].tickets as { face: { tid: string } }[]).map((t) => t.face.tid).sort());
    expect(a).toEqual(tids.slice(0, full));
    expect(b).toEqual(tids.slice(full));
  });

  it('seal to a file without the card, then load it; loading twice reports "already on card"', async () => {
    const info = await cli(env, '--json', 'card', 'info', '--card', 'card.img');
    writeFileSync(join(dir, 'card.json'), info.stdout);
    const seal = await cli(env, '--json', 'issue', '--credentials', 'card.json', '--service-date', DATE, '--train', 'S1', '--tid', 'S1', '--out', 's1.jsonl');
    expect(seal.code).toBe(0);
    expect(seal.json()[0]).toMatchObject({ status: 'sealed', tid: 'S1' });
    const load = await cli(env, '--json', 'load', 's1.jsonl', '--card', 'card.img');
    expect(load.code).toBe(0);
    expect(load.json()[0]).toMatchObject({ status: 'loaded', tid: 'S1' });
    const again = await cli(env, 'load', 's1.jsonl', '--card', 'card.img');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/S1 already on card/);
    const elsewhere = await cli(env, 'load', 's1.jsonl', '--card', 'small.img');
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stdout).toMatch(/TICKET_NOT_FOR_THIS_CARD/);
  });

  it('a reader of the output that goes away (EPIPE): exit 141 with one JSON line on stderr, no stack; the re-run finishes the batch, every row once', async () => {
    expect((await cli(env, 'card', 'create', 'pipe.img', '--capacity', '210000')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'pipe.img')).code).toBe(0);
    const rows = Array.from({ length: 200 }, (_, i) => `${DATE},P${i % 7},BJS,SHH,${i + 1}A`);
    writeFileSync(join(dir, 'pipe.csv'), `serviceDate,train,origin,destination,seat\n${rows.join('\n')}\n`);
    const run = cliProcess(env, '--json', 'issue', '--card', 'pipe.img', '--from', 'pipe.csv');
    // The first result line read, the reading end closed (as `| head -1` does).
    run.child.stdout.once('data', () => run.child.stdout.destroy());
    const code = await run.exited;
    expect(code).toBe(141);
    const lines = run.output().stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ ok: false, exitCode: 141, kind: 'OutputClosed' });
    const again = await cli(env, '--json', 'issue', '--card', 'pipe.img', '--from', 'pipe.csv');
    expect(again.code).toBe(0);
    const summary = again.json().at(-1)!;
    expect(summary).toMatchObject({ total: 200, failed: 0, notAttempted: 0 });
    expect((summary.loaded as number) + (summary.alreadyOnCard as number)).toBe(200);
    const tids = again.json().filter((r) => !r.summary).map((r) => r.tid);
    expect(new Set(tids).size).toBe(200);
  });

  it('--out to a file that cannot be written: exit 1 before anything is opened or issued', async () => {
    for (const [out, reason] of [[join(dir, 'no-such-dir', 'x.jsonl'), /its directory does not exist/], [dir, /is a directory/]] as const) {
      const r = await cli(env, '--json', 'issue', '--credentials', 'card.json', '--service-date', DATE, '--train', 'O1', '--out', out);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stderr.trim())).toMatchObject({ ok: false, exitCode: 1, kind: 'UsageError', error: expect.stringMatching(reason) });
    }
  });

  it('an unknown CSV column fails the whole file as a usage error', async () => {
    writeFileSync(join(dir, 'cols.csv'), `serviceDate,platform\n${DATE},4\n`);
    const r = await cli(env, 'issue', '--card', 'card.img', '--from', 'cols.csv');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown column\(s\) "platform"/);
  });
});

describe('checking terminal and gate', () => {
  it('verify, gate entry PASS then REJECT, use, exit, delete, rebook', async () => {
    const verify = await cli(env, '--json', 'verify', '--card', 'card.img', '--tid', 'B1');
    expect(verify.code).toBe(0);
    expect(verify.json()[0]).toMatchObject({ ok: true, ticket: { face: { tid: 'B1', passenger: 'Li, Wei', departure: '09:00' }, verificationCode: { verified: true } } });

    const notFound = await cli(env, 'verify', '--card', 'card.img', '--tid', 'NOPE');
    expect(notFound.code).toBe(2);
    expect(notFound.stderr).toMatch(/VERIFY: no such ticket on this card/);

    const pass = await cli(env, 'gate', '--card', 'card.img', '--station', 'BJS', '--direction', 'entry', '--train', 'G1', ...AT('08:30:00'));
    expect(pass.code).toBe(0);
    expect(pass.stdout).toMatch(/^PASS B1 /);
    const twice = await cli(env, '--json', 'gate', '--card', 'card.img', '--station', 'BJS', '--direction', 'entry', '--train', 'G1', ...AT('08:31:00'));
    expect(twice.code).toBe(6);
    expect(twice.json()[0]).toMatchObject({ pass: false, reason: 'already_inside', tid: 'B1' });

    const punch = await cli(env, '--json', 'use', '--card', 'card.img', '--tid', 'B1', '--event', 'punch', '--station', 'TRAIN', ...AT('09:10:00'));
    expect(punch.code).toBe(0);
    expect(punch.json()[0]).toMatchObject({ ok: true, event: 'PUNCH', tid: 'B1' });
    const badEvent = await cli(env, 'use', '--card', 'card.img', '--tid', 'B1', '--event', 'jump');
    expect(badEvent.code).toBe(1);

    const exit = await cli(env, 'gate', '--card', 'card.img', '--station', 'SHH', '--direction', 'exit', '--train', 'G1', ...AT('14:00:00'));
    expect(exit.stdout).toMatch(/^PASS B1 .*goodbye/);

    const del = await cli(env, '--json', 'delete', '--card', 'card.img', '--tid', 'B1');
    expect(del.code).toBe(0);
    expect(del.json()[0]).toMatchObject({ ok: true, tid: 'B1', receipt: expect.stringMatching(/^B4/) });

    const rebook = await cli(env, '--json', 'rebook', '--card', 'card.img', '--tid', 'J1', '--service-date', '2030-01-16', '--train', 'G7');
    expect(rebook.code).toBe(0);
    const out = rebook.json()[0] as { deleted: { tid: string }; issued: { face: { tid: string; train: string; origin: string; serviceDate: string } } };
    expect(out.deleted.tid).toBe('J1');
    expect(out.issued.face).toMatchObject({ train: 'G7', origin: 'BJS', serviceDate: '2030-01-16' });
    expect(out.issued.face.tid).not.toBe('J1');

    const list = await cli(env, 'tickets', '--card', 'card.img');
    expect(list.stdout).not.toMatch(/ B1 /);
    expect(list.stdout).toMatch(/G7/);
  });
});

describe('a gate of its own: provision-gate, then gate --config', () => {
  it('the gate runs from its directory in modes pki and sym; its passphrase, not the office\'s, opens it', async () => {
    const gateEnv: CliEnv = { ...env, vars: { ETICKET_GATE_PASSPHRASE: 'gate passphrase' } };
    expect((await cli(env, 'card', 'create', 'own-gate.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'own-gate.img')).code).toBe(0);
    for (const [tid, train] of [['OG-P', 'P1'], ['OG-S', 'S1']]) {
      expect((await cli(env, 'issue', '--card', 'own-gate.img', '--tid', tid, '--service-date', DATE, '--train', train, '--origin', 'BJS')).code).toBe(0);
    }
    const provisioned = await cli(gateEnv, '--json', 'provision-gate', 'gate-bjs-09', '--gate-id', 'BJS-G09', '--station', 'BJS', '--mode', 'both');
    expect(provisioned.stderr).toBe('');
    expect(provisioned.json()[0]).toMatchObject({ ok: true, gateId: 'BJS-G09', station: 'BJS', modes: ['pki', 'sym'] });

    const pki = await cli(gateEnv, '--json', 'gate', '--config', 'gate-bjs-09', '--card', 'own-gate.img', '--direction', 'entry', '--train', 'P1', ...AT('08:00:00'));
    expect(pki.code, pki.stderr).toBe(0);
    expect(pki.json()[0]).toMatchObject({ pass: true, mode: 'pki', tid: 'OG-P', gateId: 'BJS-G09', station: 'BJS' });
    const sym = await cli(gateEnv, '--json', 'gate', '--config', 'gate-bjs-09', '--mode', 'sym', '--card', 'own-gate.img', '--direction', 'entry', '--train', 'S1', ...AT('08:01:00'));
    expect(sym.code, sym.stderr).toBe(0);
    expect(sym.json()[0]).toMatchObject({ pass: true, mode: 'sym', tid: 'OG-S', gateId: 'BJS-G09' });

    const officePass = await cli({ ...env, vars: { ETICKET_GATE_PASSPHRASE: 'correct horse battery staple' } }, 'gate', '--config', 'gate-bjs-09', '--card', 'own-gate.img', '--direction', 'exit');
    expect(officePass.code).toBe(5);
    expect(officePass.stderr).toMatch(/wrong passphrase/);
    const noPass = await cli(env, 'gate', '--config', 'gate-bjs-09', '--card', 'own-gate.img', '--direction', 'exit');
    expect(noPass.code).toBe(1);
    expect(noPass.stderr).toMatch(/no gate passphrase: set ETICKET_GATE_PASSPHRASE/);
    const notGate = await cli(gateEnv, 'gate', '--config', '.', '--card', 'own-gate.img', '--direction', 'exit');
    expect(notGate.code).toBe(1);
    expect(notGate.stderr).toMatch(/is not a gate configuration/);
    const badMode = await cli(gateEnv, 'provision-gate', 'gate-x', '--gate-id', 'X', '--station', 'BJS', '--mode', 'both-ways');
    expect(badMode.code).toBe(1);
    expect(badMode.stderr).toMatch(/--mode is pki, sym or both/);
  });
});

describe('gate mode sym', () => {
  it('gate --mode sym PASS then REJECT already_inside; verify, use and delete in sym mode; receipts verify at the back office', async () => {
    expect((await cli(env, 'card', 'create', 'sym.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'sym.img')).code).toBe(0);
    expect((await cli(env, 'issue', '--card', 'sym.img', '--service-date', DATE, '--train', 'G1', '--origin', 'BJS', '--tid', 'Y1')).code).toBe(0);
    const gate = (time: string) => cli(env, '--json', 'gate', '--mode', 'sym', '--card', 'sym.img', '--station', 'BJS', '--direction', 'entry', '--train', 'G1', ...AT(time));

    const pass = await gate('08:30:00');
    expect(pass.code).toBe(0);
    const tap = pass.json()[0];
    expect(tap).toMatchObject({ pass: true, mode: 'sym', tid: 'Y1', receipt: expect.stringMatching(/^B4/), transaction: { operator: 'CR', command: 'WRITE USAGE' } });
    const twice = await gate('08:31:00');
    expect(twice.code).toBe(6);
    expect(twice.json()[0]).toMatchObject({ pass: false, reason: 'already_inside', mode: 'sym', tid: 'Y1' });
    const text = await cli(env, 'gate', '--mode', 'sym', '--card', 'sym.img', '--station', 'BJS', '--direction', 'entry', '--train', 'G1', ...AT('08:32:00'));
    expect(text.code).toBe(6);
    expect(text.stdout).toMatch(/^REJECT Y1 .*\[already_inside\]/);

    const verify = await cli(env, '--json', 'verify', '--mode', 'sym', '--card', 'sym.img', '--tid', 'Y1');
    expect(verify.code).toBe(0);
    expect(verify.json()[0]).toMatchObject({ ok: true, mode: 'sym', ticket: { face: { tid: 'Y1' }, verificationCode: { verified: true } } });

    const punch = await cli(env, '--json', 'use', '--mode', 'sym', '--card', 'sym.img', '--tid', 'Y1', '--event', 'punch', '--station', 'TRAIN', ...AT('09:10:00'));
    expect(punch.code).toBe(0);
    const used = punch.json()[0] as { mode: string; event: string; cardSerial: string; receipt: string; transaction: Record<string, unknown> };
    expect(used).toMatchObject({ mode: 'sym', event: 'PUNCH', transaction: { command: 'WRITE USAGE' } });

    const del = await cli(env, '--json', 'delete', '--mode', 'sym', '--card', 'sym.img', '--tid', 'Y1');
    expect(del.code).toBe(0);
    const deleted = del.json()[0] as typeof used;
    expect(deleted).toMatchObject({ ok: true, mode: 'sym', tid: 'Y1', event: 'DELETED', transaction: { command: 'DELETE' } });

    // What the CLI printed is all the operator's back office needs, with its master key.
    const mk = WorkDir.open(dir).loadMasterKey('correct horse battery staple');
    const serial = fromHex(used.cardSerial);
    for (const r of [{ receipt: tap.receipt as string, transaction: tap.transaction as Record<string, unknown> }, used, deleted]) {
      expect(verifySymReceipt(mk, serial, fromHex(r.receipt), symTransactionFromJson(r.transaction)).tid).toBe('Y1');
    }
    const gone = await cli(env, 'verify', '--mode', 'sym', '--card', 'sym.img', '--tid', 'Y1');
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/the ticket was deleted from this card \(void\)/);
    const bad = await cli(env, 'gate', '--mode', 'fast', '--card', 'sym.img', '--direction', 'entry');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/mode is pki or sym/);
  });

  it('a working directory made before sym mode: one line saying how to fix it (1), then --add-master-key', async () => {
    // An old working directory: the same keys, no checking master key.
    const old = mkdtempSync(join(tmpdir(), 'eticket-cli-old-'));
    const e: CliEnv = { cwd: dir, home: old };
    try {
      const config = JSON.parse(readFileSync(join(dir, 'eticket.json'), 'utf8'));
      delete config.checkingMasterKey;
      writeFileSync(join(old, 'eticket.json'), JSON.stringify(config));
      for (const f of ['ca.crt', 'authority.pub', 'terminal.pub']) copyFileSync(join(dir, f), join(old, f));
      mkdirSync(join(old, 'keys'));
      for (const f of readdirSync(join(dir, 'keys')).filter((f) => !f.startsWith('checking-master'))) copyFileSync(join(dir, 'keys', f), join(old, 'keys', f));

      const results = await Promise.all([
        cli(e, 'gate', '--mode', 'sym', '--card', 'card.img', '--station', 'BJS', '--direction', 'entry'),
        cli(e, 'use', '--mode', 'sym', '--card', 'card.img', '--tid', 'B6', '--event', 'punch'),
        cli(e, 'delete', '--mode', 'sym', '--card', 'card.img', '--tid', 'B6'),
      ]);
      for (const r of results) {
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/has no checking master key .*run `eticket init --add-master-key`/);
      }
      // pki mode does not need it
      expect((await cli(e, 'verify', '--card', 'card.img', '--tid', 'B6')).code).toBe(0);

      const wrong = await cli({ ...e, passphrase: 'wrong' }, 'init', '--add-master-key');
      expect(wrong.code).toBe(5);
      expect(existsSync(join(old, 'keys', 'checking-master-v1.secret.json'))).toBe(false);
      const add = await cli(e, '--json', 'init', '--add-master-key');
      expect(add.code).toBe(0);
      expect(add.json()[0]).toMatchObject({ ok: true, checkingMasterKey: { version: 1 } });
      expect(existsSync(join(old, 'keys', 'checking-master-v1.secret.json'))).toBe(true);
      const again = await cli(e, 'init', '--add-master-key');
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already has checking master key/);
      // card.img was personalised without this new key: the gate rejects it, with the card's reason.
      const tap = await cli(e, 'gate', '--mode', 'sym', '--card', 'card.img', '--station', 'BJS', '--direction', 'entry');
      expect(tap.code).toBe(6);
      expect(tap.stdout).toMatch(/SECURITY_STATUS_NOT_SATISFIED/);
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  });
});

describe('raw APDUs and traces', () => {
  it('apdu decodes command and status word names; a refusal is exit 2; bad hex is exit 1', async () => {
    // One process at a time on card.img (a second one would find the image locked: exit 7); the bad hex is
    // refused before the card is opened, so it may run beside them.
    const [[ok, refused], bad] = await Promise.all([
      (async () => [
        await cli(env, 'apdu', '--card', 'card.img', '00A4040009F0455449434B455401', '80CA00D100'),
        await cli(env, 'apdu', '--card', 'card.img', '--select', '80CA00FF00'),
      ])(),
      cli(env, 'apdu', '--card', 'card.img', 'zz12'),
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/SELECT[\s\S]*9000 {2}SUCCESS[\s\S]*GET DATA/);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toMatch(/6A86 {2}INCORRECT_P1P2/);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not an APDU/);
  });

  it('--record writes a dump that trace pretty-prints with names', async () => {
    const rec = await cli(env, '--record', 'session.apdu', 'tickets', '--card', 'card.img');
    expect(rec.code).toBe(0);
    expect(readFileSync(join(dir, 'session.apdu'), 'utf8')).toMatch(/^# Generated by eticket/);
    const [trace, json, missing] = await Promise.all([cli(env, 'trace', 'session.apdu'), cli(env, '--json', 'trace', 'session.apdu'), cli(env, 'trace', 'none.apdu')]);
    expect(trace.code).toBe(0);
    expect(trace.stdout).toMatch(/#1 SELECT/);
    // The list ends with a view of no ticket, 9000 and as long as the others: nothing in the trace tells it apart.
    expect(trace.stdout).toMatch(/READ[\s\S]*9000 SUCCESS/);
    // By status word, not by grepping the text for "6A83": the trace prints random challenges and ciphertexts in
    // hex, where those four digits turn up by chance in a few runs out of a hundred.
    const entries = json.json() as { sw?: string }[];
    expect(entries.filter((e) => e.sw === '6A83')).toEqual([]);
    expect(entries[1]).toMatchObject({ index: 1, command: 'SELECT', sw: '9000', swName: 'SUCCESS' });
    expect(missing.code).toBe(1);
  });
});

describe('SM9 suite (identity-based keys)', () => {
  it('init --suite sm9, personalise, issue a CSV batch and pass a gate, all through the CLI', async () => {
    const sm9Dir = mkdtempSync(join(tmpdir(), 'eticket-cli-sm9-'));
    const e: CliEnv = { cwd: sm9Dir };
    try {
      const init = await cli(e, 'init', '--operator', 'MT', '--suite', 'sm9');
      expect(init.code).toBe(0);
      expect(existsSync(join(sm9Dir, 'kgc.pub'))).toBe(true);
      expect(existsSync(join(sm9Dir, 'ca.crt'))).toBe(false);
      expect((await cli(e, 'card', 'create', 'c.img', '--suite', 'sm9')).code).toBe(0);
      const pers = await cli(e, 'card', 'personalize', '--card', 'c.img');
      expect(pers.code).toBe(0);
      expect(pers.stdout).toMatch(/identity keys extracted by the key generation centre/);
      writeFileSync(join(sm9Dir, 'b.csv'), `serviceDate,train,origin,destination\n${DATE},M1,A,B\n`);
      const issue = await cli(e, '--json', 'issue', '--card', 'c.img', '--from', 'b.csv');
      expect(issue.code).toBe(0);
      expect(JSON.parse(issue.stdout.trim().split('\n')[0]).status).toBe('loaded');
      const gate = await cli(e, 'gate', '--card', 'c.img', '--station', 'A', '--direction', 'entry', ...AT('08:00:00'));
      expect(gate.code).toBe(0);
      expect(gate.stdout).toMatch(/^PASS /);
      // SM9 working directories have a checking master key too: the same card leaves through a sym gate.
      const out = await cli(e, '--json', 'gate', '--mode', 'sym', '--card', 'c.img', '--station', 'B', '--direction', 'exit', ...AT('10:00:00'));
      expect(out.code).toBe(0);
      expect(out.json()[0]).toMatchObject({ pass: true, mode: 'sym', transaction: { operator: 'MT' } });
      // card create in an SM9 working directory makes an SM9 card; an RSA one cannot be personalised by an SM9 back office
      const made = await cli(e, '--json', 'card', 'create', 'd.img');
      expect(made.json()[0]).toMatchObject({ ok: true, suite: 'sm9' });
      expect((await cli(e, 'card', 'create', 'r.img', '--suite', 'rsa')).code).toBe(0);
      const wrong = await cli(e, 'card', 'personalize', '--card', 'r.img');
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(sm9Dir, { recursive: true, force: true });
    }
  });
});
