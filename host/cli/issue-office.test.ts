// The issue command's back-office thread (issue-office.ts): errors cross it as their own classes with their fields,
// a chunk issued there is the store's (read back, marked, the store released at close), and a store that cannot
// open stops the command with the error that stopped it. The thread runs from dist/ (built by the test setup).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseError } from '../../backoffice/store/database.js';
import { NotFoundError, StoreConflictError } from '../../backoffice/store/store.js';
import { CardStatusError, InvalidInputError } from '../../sdk/errors.js';
import { LockHeldError } from '../../sdk/file-lock.js';
import { fromHex } from '../../sdk/bytes.js';
import type { CardCredentials } from '../../sdk/roles/trust.js';
import { cli, type CliEnv } from './run-cli.js';
import { crossError, errorClasses, uncrossError } from './issue-office.js';
import { UsageError } from './context.js';
import { commandOf } from './office-prestart.js';
import { buildProgram } from './main.js';

describe('which command bin/eticket.mjs prestarts the back-office thread for', () => {
  it('the first word that is neither an option nor a global option\'s value', () => {
    expect(commandOf(['--json', 'issue', '--card', 'c.img', '--from', 'b.csv'])).toBe('issue');
    expect(commandOf(['--dir', 'issue', 'card', 'info'])).toBe('card');
    expect(commandOf(['--dir=issue', 'tickets', 'list'])).toBe('tickets');
    expect(commandOf(['tickets', 'list', '--train', 'issue'])).toBe('tickets');
    expect(commandOf(['--wait', '5', '--database', 'postgres://x', 'issue'])).toBe('issue');
    expect(commandOf(['--json'])).toBeUndefined();
  });

  it('every global option that takes a value is skipped with its value: `--<option> issue serve` is serve (never a prestarted thread, nor its --liftoff-only, in a long-running serve)', () => {
    const takesValue = buildProgram().options.filter((o) => o.required || o.optional).map((o) => o.long!);
    expect(takesValue).toContain('--dir');
    for (const long of takesValue) {
      expect(commandOf([long, 'issue', 'serve']), long).toBe('serve');
      expect(commandOf([`${long}=issue`, 'serve']), long).toBe('serve');
      expect(commandOf(['--json', long, 'issue', '--debug', 'serve', '--port', '0']), long).toBe('serve');
    }
  });
});

describe('an error crossing the thread', () => {
  it('keeps its class, message, fields and cause: a conflict with its reason, a database error with its SQLSTATE, a held lock with its holder, a card refusal with its status word', async () => {
    const classes = await errorClasses();
    const across = <E extends Error>(e: E): E => uncrossError(structuredClone(crossError(e)), classes) as E;

    const conflict = across(new StoreConflictError('TID CR-1 was already issued to card 01', 'tid_taken'));
    expect(conflict).toBeInstanceOf(StoreConflictError);
    expect(conflict.reason).toBe('tid_taken');
    expect(conflict.message).toBe('TID CR-1 was already issued to card 01');

    const db = across(new DatabaseError('duplicate key value', '23505', 'tickets_pkey', { cause: new InvalidInputError('inner') }));
    expect(db).toBeInstanceOf(DatabaseError);
    expect([db.code, db.constraint]).toEqual(['23505', 'tickets_pkey']);
    expect(db.cause).toBeInstanceOf(InvalidInputError);
    expect((db.cause as Error).message).toBe('inner');

    const holder = { pid: 4242, since: '2026-12-01T00:00:00.000Z', command: 'eticket serve', nonce: 'n' };
    const lock = across(new LockHeldError('the embedded store of /w', holder));
    expect(lock).toBeInstanceOf(LockHeldError);
    expect(lock.holder).toEqual(holder);

    const card = across(new CardStatusError('LOAD', 0x6a84, 'NOT_ENOUGH_MEMORY', 'NVM full'));
    expect(card).toBeInstanceOf(CardStatusError);
    expect([card.sw, card.swName, card.command]).toEqual([0x6a84, 'NOT_ENOUGH_MEMORY', 'LOAD']);

    expect(across(new UsageError('give --from or --service-date'))).toBeInstanceOf(UsageError);
    expect(across(new NotFoundError('no service 7'))).toBeInstanceOf(NotFoundError);
  });

  it('of a class the CLI does not know, or a thrown non-error, arrives as a plain Error with its name and message', async () => {
    const classes = await errorClasses();
    class ThirdPartyError extends Error {
      override name = 'ThirdPartyError';
      code = 'E_THIRD';
    }
    const back = uncrossError(structuredClone(crossError(new ThirdPartyError('from a library'))), classes) as Error & { code?: string };
    expect(Object.getPrototypeOf(back)).toBe(Error.prototype);
    expect([back.name, back.message, back.code]).toEqual(['ThirdPartyError', 'from a library', 'E_THIRD']);
    const thrown = uncrossError(structuredClone(crossError('a string')), classes);
    expect([Object.getPrototypeOf(thrown), thrown.message]).toEqual([Error.prototype, 'a string']);
  });
});

/** The compiled modules: the thread's entry exists only there, and its errors are of the compiled classes. */
const dist = async () => ({
  office: (await import(new URL('../../dist/host/cli/issue-office.js', import.meta.url).href)) as typeof import('./issue-office.js'),
  store: (await import(new URL('../../dist/backoffice/store/store.js', import.meta.url).href)) as typeof import('../../backoffice/store/store.js'),
  database: (await import(new URL('../../dist/backoffice/store/database.js', import.meta.url).href)) as typeof import('../../backoffice/store/database.js'),
  lock: (await import(new URL('../../dist/sdk/file-lock.js', import.meta.url).href)) as typeof import('../../sdk/file-lock.js'),
  prestart: (await import(new URL('../../dist/host/cli/office-prestart.js', import.meta.url).href)) as typeof import('./office-prestart.js'),
});

describe('the back-office thread of `eticket issue`', () => {
  const passphrase = 'correct horse battery staple';
  let dir: string;
  let env: CliEnv;
  const creds: CardCredentials[] = [];
  const settings = (waitSeconds = 5) => ({ json: true, waitSeconds, command: 'issue-office.test' });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eticket-office-'));
    env = { cwd: dir, passphrase };
    expect((await cli(env, 'init', '--operator', 'CR')).code).toBe(0);
    for (const name of ['a.img', 'b.img']) {
      expect((await cli(env, 'card', 'create', name)).code).toBe(0);
      expect((await cli(env, 'card', 'personalize', '--card', name)).code).toBe(0);
      const c = (await cli(env, '--json', 'card', 'info', '--card', name)).json()[0].credentials as { suite: CardCredentials['suite']; serial: string; encryptionCertificate?: string; signingCertificate?: string; identity?: string };
      creds.push({ suite: c.suite, serial: fromHex(c.serial), encryptionCertificate: c.encryptionCertificate ? fromHex(c.encryptionCertificate) : undefined, signingCertificate: c.signingCertificate ? fromHex(c.signingCertificate) : undefined, identity: c.identity });
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('issues a chunk there: the tickets are the store\'s, a TID taken by another card is a StoreConflictError (tid_taken) of the compiled class; close releases the store', async () => {
    const d = await dist();
    expect(d.office.canUseThread()).toBe(true);
    const office = await d.office.openIssueOffice(dir, passphrase, settings(), Promise.resolve({ derive: true }));
    let closed = false;
    try {
      expect(office.operator).toBe('CR');
      const request = { serviceDate: '2030-01-15', train: 'G1', origin: 'BJS', destination: 'SHH', departure: 420, seat: '1A' };
      const first = await office.issueMany([{ request: { ...request, tid: 'CR-OFFICE-1' }, card: creds[0] }, { request: { ...request, seat: '2A' }, card: creds[0], requestKey: 'office-test-row-2' }]);
      const outcomes = first.map((x) => ('outcome' in x ? x.outcome : undefined));
      expect(outcomes.map((o) => o?.status)).toEqual(['new', 'new']);
      const stored = await office.ticket('CR-OFFICE-1');
      expect(stored?.cardSerial).toBe(Buffer.from(creds[0].serial).toString('hex').toUpperCase());
      expect(Buffer.from(stored!.sealed).equals(Buffer.from(outcomes[0]!.ticket.sealed))).toBe(true);
      expect(await office.tidForRequest('office-test-row-2')).toBe(outcomes[1]!.ticket.tid);
      expect(await office.markLoadedMany([{ tid: 'CR-OFFICE-1', sequenceNumber: 1 }])).toEqual(['CR-OFFICE-1']);

      const taken = await office.issueMany([{ request: { ...request, tid: 'CR-OFFICE-1' }, card: creds[1] }]);
      const error = 'error' in taken[0] ? taken[0].error : undefined;
      expect(error).toBeInstanceOf(d.store.StoreConflictError);
      expect((error as InstanceType<typeof d.store.StoreConflictError>).reason).toBe('tid_taken');
      expect(error?.message).toMatch(/TID CR-OFFICE-1 was already issued to card/);
      await office.close();
      closed = true;
      // The lock is gone: the store opens in this thread at once.
      const again = await d.store.Store.open(dir, { waitMs: 0 });
      expect((await again.ticket('CR', 'CR-OFFICE-1'))?.status).toBe('loaded');
      await again.close();
    } finally {
      if (!closed) await office.close();
    }
  });

  it('a store held by another holder: the opening fails with LockHeldError naming it (not as a thread that stopped)', async () => {
    const d = await dist();
    const held = d.lock.FileLock.tryAcquire(d.database.pgliteLayout(dir).lockFile, 'the embedded store (held by the test)', 'the test holding the store');
    try {
      const opening = d.office.openIssueOffice(dir, passphrase, settings(0), Promise.resolve({ none: true }));
      const error = await opening.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(d.lock.LockHeldError);
      expect((error as InstanceType<typeof d.lock.LockHeldError>).holder.command).toBe('the test holding the store');
      expect(error).not.toBeInstanceOf(d.database.StoreUnavailableError);
    } finally {
      held.release();
    }
  });

  it('a thread prestarted for the command is the one openIssueOffice uses: told what to open only then, it held no lock before', async () => {
    const d = await dist();
    d.prestart.prestartIssueOffice(['--json', 'issue', '--from', 'x.csv'], {});
    // Prestarted, not told anything yet: the store is free (this thread opens and closes it at once).
    const free = await d.store.Store.open(dir, { waitMs: 0 });
    await free.close();
    const office = await d.office.openIssueOffice(dir, passphrase, settings(), Promise.resolve({ derive: true }));
    try {
      // Taken by that opening: nothing is left to take.
      expect(d.prestart.takePrestartedIssueOffice()).toBeUndefined();
      expect(office.operator).toBe('CR');
      const issued = await office.issueMany([{ request: { serviceDate: '2030-01-16', train: 'G9', seat: '9A' }, card: creds[0], requestKey: 'office-test-prestart' }]);
      expect('outcome' in issued[0] && issued[0].outcome.status).toBe('new');
      // The store is the thread's now: another opening is refused, naming it.
      const held = await d.store.Store.open(dir, { waitMs: 0 }).then(
        (s) => s.close().then(() => undefined),
        (e: unknown) => e,
      );
      expect(held).toBeInstanceOf(d.lock.LockHeldError);
    } finally {
      await office.close();
    }
  });

  it('no thread is prestarted for another command, for --help, or with ETICKET_STORE_THREAD=0', async () => {
    const d = await dist();
    for (const [argv, env] of [[['card', 'issue'], {}], [['issue', '--help'], {}], [['--dir', 'issue', 'gate'], {}], [['issue'], { ETICKET_STORE_THREAD: '0' }]] as [string[], NodeJS.ProcessEnv][]) {
      d.prestart.prestartIssueOffice(argv, env);
      expect(d.prestart.takePrestartedIssueOffice(), argv.join(' ')).toBeUndefined();
    }
  });

  it('the batch on the thread and in process (ETICKET_STORE_THREAD=0) load the same rows with the same results', async () => {
    const csv = 'serviceDate,train,origin,destination,seat,tid\n2030-02-01,G7,BJS,SHH,1A,\n2030-02-01,G7,BJS,SHH,2A,CR-OFFICE-1\nnot-a-date,G7,BJS,SHH,3A,\n';
    const results: unknown[] = [];
    for (const [i, thread] of ['1', '0'].entries()) {
      const file = join(dir, `batch-${thread}.csv`);
      writeFileSync(file, csv.replace('2030-02-01', `2030-02-0${i + 2}`).replace('2030-02-01', `2030-02-0${i + 2}`));
      const run = await cli({ ...env, vars: { ETICKET_STORE_THREAD: thread } }, '--json', 'issue', '--card', 'b.img', '--from', file);
      expect(run.code).toBe(4); // the taken tid and the bad date fail, the rest loads: partial success
      results.push(run.json().map((r: { status?: string; line?: number; summary?: boolean; loaded?: number; failed?: number }) => (r.summary ? { loaded: r.loaded, failed: r.failed } : { line: r.line, status: r.status })));
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]).toEqual([{ line: 2, status: 'loaded' }, { line: 3, status: 'failed' }, { line: 4, status: 'failed' }, { loaded: 1, failed: 2 }]);
  });

  it('with the store held by another process and a long --wait, a wrong passphrase or a card image that does not open ends the command at once with its own error (the wait for the store given up), on the thread and in process', async () => {
    const d = await dist();
    writeFileSync(join(dir, 'held.csv'), 'serviceDate,train\n2030-03-03,H1\n');
    writeFileSync(join(dir, 'broken.img'), 'not a card image');
    const held = d.lock.FileLock.tryAcquire(d.database.pgliteLayout(dir).lockFile, 'the embedded store (held by the test)', 'the test holding the store');
    try {
      for (const thread of ['1', '0']) {
        // --wait 600: a command that waited for the store would outlive the run's 90 s limit (the cli helper fails it).
        const opts = { ...env, vars: { ETICKET_STORE_THREAD: thread }, timeoutMs: 90_000 };
        const wrong = await cli({ ...opts, passphrase: 'wrong' }, '--wait', '600', 'issue', '--card', 'a.img', '--from', 'held.csv');
        expect(wrong.code, wrong.stderr).toBe(5);
        expect(wrong.stderr).toMatch(/wrong passphrase/);
        const broken = await cli(opts, '--wait', '600', 'issue', '--card', 'broken.img', '--from', 'held.csv');
        expect(broken.code, broken.stderr).toBe(3);
        expect(broken.stderr).toMatch(/broken\.img/);
      }
    } finally {
      held.release();
    }
  });

  it('a wrong passphrase stops `issue` with exit 5 and its one line, nothing issued; also with the store held (--wait 0), on the thread and in process, and with no lock left behind', async () => {
    const d = await dist();
    writeFileSync(join(dir, 'wrong.csv'), 'serviceDate,train,tid\n2030-03-01,W1,CR-WRONG-1\n2030-03-01,W2,CR-WRONG-2\n');
    const wrong = (vars: NodeJS.ProcessEnv, ...extra: string[]) => cli({ ...env, passphrase: 'wrong', vars }, ...extra, 'issue', '--card', 'a.img', '--from', 'wrong.csv');
    const runs = [await wrong({}), await wrong({ ETICKET_STORE_THREAD: '0' })];
    const held = d.lock.FileLock.tryAcquire(d.database.pgliteLayout(dir).lockFile, 'the embedded store (held by the test)', 'the test holding the store');
    try {
      runs.push(await wrong({}, '--wait', '0'), await wrong({ ETICKET_STORE_THREAD: '0' }, '--wait', '0'));
    } finally {
      held.release();
    }
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(5);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^eticket: cannot decrypt the private key: wrong passphrase .*ETICKET_PASSPHRASE/);
    }
    // Nothing issued, and the store free at once (no lock left by the thread).
    const store = await d.store.Store.open(dir, { waitMs: 0 });
    try {
      expect(await store.ticket('CR', 'CR-WRONG-1')).toBeUndefined();
      expect(await store.ticket('CR', 'CR-WRONG-2')).toBeUndefined();
    } finally {
      await store.close();
    }
    // The right passphrase then issues both, as new tickets.
    const right = await cli(env, '--json', 'issue', '--card', 'a.img', '--from', 'wrong.csv');
    expect(right.code, right.stderr).toBe(0);
    expect(right.json().map((r) => r.status ?? r.summary)).toEqual(['loaded', 'loaded', true]);
  });

  it('usage errors after the thread was prestarted end at once with their exit status, holding no lock; --help too', async () => {
    const d = await dist();
    writeFileSync(join(dir, 'header-only.csv'), 'serviceDate,train\n');
    const cases: [string[], number, RegExp][] = [
      [['issue'], 1, /nothing to issue: give --from/],
      [['issue', '--card', 'a.img', '--from', 'header-only.csv'], 1, /header-only\.csv holds no tickets/],
      [['issue', '--card', 'a.img', '--from', dir], 1, /is a directory/],
      [['issue', '--card', 'missing.img', '--service-date', '2030-03-02'], 1, /card image missing\.img does not exist/],
      [['--wait', 'soon', 'issue', '--card', 'a.img', '--service-date', '2030-03-02'], 1, /--wait takes seconds/],
      [['--dir', join(dir, 'nowhere'), 'issue', '--card', 'a.img', '--service-date', '2030-03-02'], 1, /not an eticket working directory/],
      [['--database', 'not-a-url', 'issue', '--card', 'a.img', '--service-date', '2030-03-02'], 3, /not a PostgreSQL URL/],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli({ ...env, timeoutMs: 60_000 }, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
      const store = await d.store.Store.open(dir, { waitMs: 0 });
      await store.close();
    }
    const help = await cli(env, 'issue', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: eticket issue/);
  });
});

describe('the authority key handed to the thread: a legacy key file, an SM9 working directory', () => {
  const passphrase = 'correct horse battery staple';
  const roots: string[] = [];
  afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

  /** A working directory with a personalised card and a two-row batch. */
  async function workDir(suite: 'rsa' | 'sm9'): Promise<CliEnv> {
    const root = mkdtempSync(join(tmpdir(), `eticket-handover-${suite}-`));
    roots.push(root);
    const env: CliEnv = { cwd: root, passphrase };
    expect((await cli(env, 'init', '--operator', 'CR', '--suite', suite)).code).toBe(0);
    expect((await cli(env, 'card', 'create', 'c.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'c.img')).code).toBe(0);
    writeFileSync(join(root, 'b.csv'), 'serviceDate,train\n2030-04-01,H1\n2030-04-01,H2\n');
    return env;
  }

  it('a wrong passphrase is exit 5 and issues nothing, a right one issues the batch (the key opened once, handed or derived)', async () => {
    const [rsa, sm9] = await Promise.all([workDir('rsa'), workDir('sm9')]);
    // The RSA directory's authority key as eticket wrote it before the sealed container: PBKDF2-encrypted PKCS#8 PEM.
    const { KeyStore, RSA_PRIVATE_KIND } = await import('../../sdk/roles/keystore.js');
    const { createPrivateKey } = await import('node:crypto');
    const { existsSync } = await import('node:fs');
    const keys = join(rsa.cwd, 'keys');
    const der = Buffer.from(new KeyStore(keys).getBytes('authority', passphrase, RSA_PRIVATE_KIND));
    writeFileSync(join(keys, 'authority.key'), createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase }) as string, { mode: 0o600 });
    rmSync(join(keys, 'authority.secret.json'));

    for (const env of [rsa, sm9]) {
      const wrong = await cli({ ...env, passphrase: 'wrong' }, 'issue', '--card', 'c.img', '--from', 'b.csv');
      expect(wrong.code, wrong.stderr).toBe(5);
      expect(wrong.stdout).toBe('');
      expect(wrong.stderr).toMatch(/^eticket: cannot decrypt the private key: wrong passphrase/);
      // Nothing issued: the store holds no ticket (and is free at once).
      const store = await (await dist()).store.Store.open(env.cwd, { waitMs: 0 });
      try {
        expect(await store.allTickets()).toEqual([]);
      } finally {
        await store.close();
      }
      const right = await cli(env, '--json', 'issue', '--card', 'c.img', '--from', 'b.csv');
      expect(right.code, right.stderr).toBe(0);
      expect(right.json().map((r) => r.status ?? r.summary)).toEqual(['loaded', 'loaded', true]);
      expect(right.json().at(-1)).toMatchObject({ total: 2, loaded: 2, failed: 0 });
    }
    // The legacy file was rewritten in the container by the right passphrase only.
    expect(existsSync(join(keys, 'authority.key'))).toBe(false);
    expect(existsSync(join(keys, 'authority.secret.json'))).toBe(true);
  });
});
