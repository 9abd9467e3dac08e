// Real-name tickets from the CLI, end to end with spawned `eticket` processes: terminals registered with their
// keys and TOTP, the permission table, read limits; a real-name booking and a CSV batch with holder columns (and a
// photo); `eticket serve`; `eticket inspect` (holder shown for an authorised inspector, exit 8 refused, 3 offline,
// 1 not real-name); a gate showing the holder; then the privacy check: the holder's name, ID number and photo are
// in no card image, APDU dump, command output that did not ask for them, service log, key or credential file, and
// not in clear anywhere in the embedded database's files (WAL included): only encrypted.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteTemplate } from '../../test/helpers/stores.js';
import { cli, cliProcess, type CliEnv, type CliResult } from './run-cli.js';

// Data that exists nowhere else, so that a match can only be a leak.
const HOLDER = { name: 'Qiu Shaoyun', type: 'id-card', number: 'G31415926X' };
const BATCH = [
  { name: 'Xiang Yulan', type: 'passport', number: 'PE2718281' },
  { name: 'Mo Tianqi', type: 'id-card', number: 'H16180339Z' },
];
const PHOTO_MARK = 'PHOTO-MARK-5a3c';
const SECRETS = [HOLDER.name, HOLDER.number, ...BATCH.flatMap((b) => [b.name, b.number]), PHOTO_MARK];

let dir: string;
let env: CliEnv;
/** Every output that must be free of holder data: [what, text]. */
const outputs: [string, string][] = [];
const today = new Date().toISOString().slice(0, 10);

function keep(what: string, r: CliResult): CliResult {
  outputs.push([`${what} stdout`, r.stdout], [`${what} stderr`, r.stderr]);
  return r;
}

async function run(what: string, ...args: string[]): Promise<CliResult> {
  return keep(what, await cli(env, ...args));
}

const one = (r: CliResult) => r.json()[0] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

beforeAll(async () => {
  await pgliteTemplate();
  process.env.ETICKET_CLIENT_PASSPHRASE = 'terminal secret';
  dir = mkdtempSync(join(tmpdir(), 'eticket-realname-cli-'));
  env = { cwd: dir, timeoutMs: 120_000 };
  expect((await run('init', 'init')).code).toBe(0);
  for (const img of ['card.img', 'plain.img']) {
    expect((await run('card create', 'card', 'create', img)).code).toBe(0);
    expect((await run('personalize', 'card', 'personalize', '--card', img)).code).toBe(0);
  }
}, 600_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('real-name tickets from the CLI', () => {
  let serviceId: string;
  let booked: string;
  let batchTids: string[];
  let plainTid: string;
  let serve: ReturnType<typeof cliProcess> | undefined;
  let url: string;

  it('terminals with real-name credentials, the permission table, read limits', async () => {
    const g = await run('terminal add gate', '--json', 'terminal', 'add', 'gate-1', '--kind', 'gate', '--station', 'BJS', '--out', 'gate-1.json', '--totp-period', '30');
    expect(g.code, g.stderr).toBe(0);
    expect(one(g)).toMatchObject({ client: { clientId: 'gate-1', kind: 'gate', realName: true }, totp: { algorithm: 'SHA1', digits: 6, period: 30 } });
    const cred = JSON.parse(readFileSync(join(dir, 'gate-1.json'), 'utf8'));
    expect(cred.realName).toMatchObject({ encryptionKey: { cipher: 'aes-256-gcm' }, encryptionCertificate: expect.stringMatching(/^30/), totp: { algorithm: 'SHA1', secret: { cipher: 'aes-256-gcm' } } });
    expect(statSync(join(dir, 'gate-1.json')).mode & 0o777).toBe(0o600);
    for (const id of ['insp-1', 'insp-2']) expect((await run('terminal add insp', 'terminal', 'add', id, '--kind', 'inspector', '--out', `${id}.json`, '--totp-algorithm', 'SHA256', '--totp-digits', '8')).code).toBe(0);
    expect((await run('grant', 'terminal', 'grant', 'gate-1', '--station', 'BJS')).code).toBe(0);
    expect((await run('grant', 'terminal', 'grant', 'insp-1', '--kind', 'rail')).code).toBe(0);
    const twice = await run('grant again', '--json', 'terminal', 'grant', 'insp-1', '--kind', 'rail');
    expect(one(twice)).toMatchObject({ created: false });
    expect((await run('grant nothing', 'terminal', 'grant', 'insp-2')).code).toBe(1);
    const kiosk = await run('kiosk', 'terminal', 'add', 'kiosk-1', '--kind', 'issuing', '--out', 'kiosk.json');
    expect(kiosk.code).toBe(0);
    expect((await run('grant kiosk', 'terminal', 'grant', 'kiosk-1', '--any')).code).toBe(1);
    const grants = await run('grants', '--json', 'terminal', 'grants');
    expect(one(grants).grants).toMatchObject([{ clientId: 'gate-1', station: 'BJS' }, { clientId: 'insp-1', kind: 1 }]);
    const lim = await run('limits', '--json', 'realname', 'limits', '--kind', 'rail', '--reads', '3');
    expect(one(lim).limits).toEqual([{ kind: 1, maxReads: 3 }]);
  }, 600_000);

  it('a real-name booking and a batch with holder columns: the holder goes in once and comes out nowhere', async () => {
    const svc = await run('service add', '--json', 'service', 'add', '--train', 'G7', '--date', today, '--origin', 'BJS', '--destination', 'SHH', '--class', '2:20:55300', '--kind', 'rail');
    expect(svc.code, svc.stderr).toBe(0);
    serviceId = String(one(svc).service.serviceId);
    const b = await run('book', '--json', '--record', 'book.apdu', 'book', '--service', serviceId, '--class', '2', '--card', 'card.img', '--holder-name', HOLDER.name, '--holder-document-type', HOLDER.type, '--holder-document-number', HOLDER.number);
    expect(b.code, b.stderr).toBe(0);
    expect(one(b)).toMatchObject({ ok: true, realName: true });
    booked = one(b).tid;
    expect((await run('book both', 'book', '--service', serviceId, '--class', '2', '--card', 'card.img', '--passenger', 'X', '--holder-name', 'Y', '--holder-document-type', 'id-card', '--holder-document-number', '1')).code).toBe(1);

    writeFileSync(join(dir, 'face.jpg'), Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from(PHOTO_MARK), Buffer.alloc(200, 7)]));
    const csv = [
      'serviceDate,train,origin,destination,kind,passenger,holderName,holderDocumentType,holderDocumentNumber,holderPhoto',
      `${today},G7,BJS,SHH,rail,,${BATCH[0].name},${BATCH[0].type},${BATCH[0].number},face.jpg`,
      `${today},G7,BJS,SHH,rail,,${BATCH[1].name},${BATCH[1].type},${BATCH[1].number},`,
      `${today},G7,BJS,SHH,rail,,Bad Line,id-card,<script>,`,
      `${today},G7,BJS,SHH,rail,ANON PASSENGER,,,,`,
    ].join('\n');
    writeFileSync(join(dir, 'batch.csv'), csv + '\n');
    const i = await run('issue batch', '--json', '--record', 'issue.apdu', 'issue', '--card', 'card.img', '--from', 'batch.csv');
    expect(i.code, i.stderr).toBe(4);
    const lines = i.json().filter((l) => l.line !== undefined) as { line: number; status: string; tid?: string; error?: string }[];
    expect(lines.map((l) => l.status)).toEqual(['loaded', 'loaded', 'failed', 'loaded']);
    expect(lines[2].error).toMatch(/holder document number has characters/);
    batchTids = [lines[0].tid!, lines[1].tid!];
    plainTid = lines[3].tid!;
    // Re-running the batch finds every line's ticket (the same holders): nothing is issued twice.
    const again = await run('issue again', '--json', 'issue', '--card', 'card.img', '--from', 'batch.csv');
    expect((again.json().filter((l) => l.line !== undefined) as { status: string }[]).map((l) => l.status)).toEqual(['already_on_card', 'already_on_card', 'failed', 'already_on_card']);

    const t = await run('tickets', '--json', 'tickets', '--card', 'card.img');
    expect(t.code, t.stderr).toBe(0);
    const faces = (one(t).tickets as { face: Record<string, string> }[]).map((x) => x.face);
    const rn = faces.find((f) => f.tid === booked)!;
    expect(rn.holderRef).toMatch(/^[0-9A-F]{32}$/);
    expect(rn.holderBinding).toMatch(/^[0-9A-F]{64}$/);
    expect(rn.passenger).toBeUndefined();
    expect((await run('verify', '--json', 'verify', '--card', 'card.img', '--tid', booked)).code).toBe(0);
    expect((await run('card info', '--json', 'card', 'info', '--card', 'card.img')).code).toBe(0);
    expect((await run('status', '--json', 'realname', 'status', '--tid', booked)).json()[0]).toMatchObject({ state: 'held', readsUsed: 0, readsMax: 3 });
  }, 600_000);

  it('eticket serve, then inspect: the holder for an authorised inspector (0), a clear refusal otherwise (8, 1)', async () => {
    serve = cliProcess(env, '--json', 'serve', '--port', '0', '--sweep-interval', '3600');
    url = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const line = serve!.output().stdout.split('\n').find((l) => l.includes('"listening"'));
        if (line) {
          clearInterval(t);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      }, 20);
      serve!.exited.then((code) => reject(new Error(`serve exited ${code}: ${serve!.output().stderr}`)));
    });
    const ok = await cli(env, '--json', '--record', 'inspect.apdu', 'inspect', '--card', 'card.img', '--tid', booked, '--backoffice', url, '--credential', 'insp-1.json');
    // This output asked for the holder: it is the one place it may appear (kept out of the privacy check).
    expect(ok.code, ok.stderr).toBe(0);
    expect(one(ok)).toMatchObject({ tid: booked, realName: { status: 'checked', holder: { name: HOLDER.name, document: { type: HOLDER.type, number: HOLDER.number } }, readsLeft: 2 } });
    const text = await cli(env, 'inspect', '--card', 'card.img', '--tid', batchTids[0], '--backoffice', url, '--credential', 'insp-1.json', '--photo-out', 'seen.jpg');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`holder CHECKED \\(2 reads left\\)\\n  name:     ${BATCH[0].name}\\n  document: passport ${BATCH[0].number}\\n  photo:    \\d+ bytes written to seen.jpg`));
    expect(readFileSync(join(dir, 'seen.jpg')).includes(PHOTO_MARK)).toBe(true);
    rmSync(join(dir, 'seen.jpg'));

    const refused = await run('inspect refused', '--json', 'inspect', '--card', 'card.img', '--tid', booked, '--backoffice', url, '--credential', 'insp-2.json');
    expect(refused.code).toBe(8);
    expect(one(refused)).toMatchObject({ realName: { status: 'not_checked', reason: 'not_permitted' } });
    const refusedText = await run('inspect refused text', 'inspect', '--card', 'card.img', '--tid', booked, '--backoffice', url, '--credential', 'insp-2.json');
    expect(refusedText.stdout).toMatch(/holder NOT CHECKED \[not_permitted\] .*may not check this ticket/);
    const plain = await run('inspect plain', 'inspect', '--card', 'card.img', '--tid', plainTid, '--backoffice', url, '--credential', 'insp-1.json');
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/is not a real-name ticket/);
  }, 600_000);

  it('a gate with a back office shows the holder on entry; one without passes it, holder not checked', async () => {
    const g = await cli(env, '--json', 'gate', '--card', 'card.img', '--station', 'BJS', '--direction', 'entry', '--backoffice', url, '--credential', 'gate-1.json', '--holder-wait', '30000');
    expect(g.code, g.stderr).toBe(0);
    expect(one(g)).toMatchObject({ pass: true, realName: { status: 'checked', holder: { name: expect.any(String) } } });
    // A second card's real-name ticket at a gate without a back office: it passes, flagged.
    const b = await run('book plain card', '--json', 'book', '--service', serviceId, '--class', '2', '--card', 'plain.img', '--holder-name', HOLDER.name, '--holder-document-type', HOLDER.type, '--holder-document-number', HOLDER.number);
    expect(b.code).toBe(7); // the store is held by eticket serve (embedded: one process)
    expect(b.stderr).toMatch(/serve/);
    const noBo = await run('gate without back office', '--json', 'gate', '--card', 'card.img', '--station', 'SHH', '--direction', 'exit');
    expect(noBo.code, noBo.stderr).toBe(0);
    expect(one(noBo).realName).toBeUndefined();
  }, 600_000);

  it('offline: inspect says the back office is unreachable (exit 3); the access log names every read and refusal, never the holder', async () => {
    serve!.child.kill('SIGTERM');
    const code = await serve!.exited;
    outputs.push(['serve stdout', serve!.output().stdout], ['serve stderr', serve!.output().stderr]);
    expect(code).toBe(0);
    const off = await run('inspect offline', '--json', 'inspect', '--card', 'card.img', '--tid', batchTids[1], '--backoffice', url, '--credential', 'insp-1.json', '--timeout', '5');
    expect(off.code).toBe(3);
    expect(one(off)).toMatchObject({ realName: { status: 'not_checked', reason: 'unreachable' } });
    const log = await run('log', '--json', 'realname', 'log');
    expect(log.code, log.stderr).toBe(0);
    const entries = one(log).entries as { clientId: string; tid: string; outcome: string; reason: string }[];
    expect(entries.filter((e) => e.outcome === 'read').map((e) => `${e.clientId} ${e.tid}`)).toEqual([`insp-1 ${booked}`, `insp-1 ${batchTids[0]}`, `gate-1 ${booked}`]);
    expect(entries.filter((e) => e.outcome === 'refused').map((e) => `${e.clientId} ${e.reason}`)).toEqual(['insp-2 not_permitted', 'insp-2 not_permitted']);
    // Each entry names the issuance its reference named (each of these TIDs was issued once); one issuance alone.
    expect(entries.map((e) => (e as { issuance?: number }).issuance)).toEqual(entries.map(() => 1));
    const first = await run('log issuance 1', '--json', 'realname', 'log', '--tid', booked, '--issuance', '1');
    expect(first.code, first.stderr).toBe(0);
    expect((one(first).entries as { tid: string }[]).map((e) => e.tid)).toEqual(entries.filter((e) => e.tid === booked).map((e) => e.tid));
    expect((await run('log issuance 2', '--json', 'realname', 'log', '--tid', booked, '--issuance', '2')).json()[0]).toEqual({ entries: [] });
    const text = await run('log text', 'realname', 'log', '--tid', booked);
    expect(text.stdout).toContain(`${booked} #1 READ`);
    const loose = await run('log issuance without tid', '--json', 'realname', 'log', '--issuance', '1');
    expect(loose.code).toBe(1);
    expect(JSON.parse(loose.stderr.trim())).toMatchObject({ ok: false, exitCode: 1, error: expect.stringContaining('--issuance goes with --tid') });
    expect((await run('status after', '--json', 'realname', 'status', '--tid', booked)).json()[0]).toMatchObject({ state: 'held', readsUsed: 2 });
    expect((await run('sweep', '--json', 'realname', 'sweep')).json()[0]).toMatchObject({ ok: true, destroyed: [] });
  }, 600_000);

  it('the holder data is in no card image, dump, output, log, key, credential or vector; in the database only encrypted', () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name !== 'batch.csv' && e.name !== 'face.jpg') files.push(p); // the operator's own input
      }
    };
    walk(dir);
    // The working directory: card images, APDU dumps, eticket.json, keys/, credential files, the store (WAL too).
    expect(files.some((f) => f.endsWith('card.img'))).toBe(true);
    expect(files.filter((f) => f.endsWith('.apdu'))).toHaveLength(3);
    expect(files.some((f) => f.includes(`${join('store', 'pg_wal')}`))).toBe(true);
    const vectors = readdirSync(join(__dirname, '../../test-vectors')).filter((f) => f.endsWith('.json')).map((f) => join(__dirname, '../../test-vectors', f));
    const leaks: string[] = [];
    for (const f of [...files, ...vectors]) {
      const bytes = readFileSync(f);
      for (const s of SECRETS) if (bytes.includes(Buffer.from(s, 'utf8'))) leaks.push(`${f}: ${s}`);
    }
    for (const [what, text] of outputs) for (const s of SECRETS) if (text.includes(s)) leaks.push(`${what}: ${s}`);
    expect(leaks).toEqual([]);
    expect(outputs.length).toBeGreaterThan(40);
    expect(existsSync(join(dir, 'inspect.apdu'))).toBe(true);
  });
});
