// The package as a gate vendor gets it: `npm pack`, installed without the network into an empty project (test/
// helpers/offline-install.ts), compiled against its declarations with tsc --strict, and run: a consumer program,
// the README's sample and the examples/ (issuing kiosk, QA vector run; the production gate over pcscd + vpcd).

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliProcess, type CliEnv } from '../host/cli/run-cli.js';
import { installOffline, npmEnv } from './helpers/offline-install.js';
import { lockVpcd, pcscStack, VPCD_READER_1, waitUntil } from './helpers/pcsc-stack.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'eticket-package-'));
const project = join(work, 'consumer');
const out = join(project, 'out');
let packed: { filename: string; files: { path: string }[]; size: number; unpackedSize: number };
let compile: { status: number | null; output: string };

/** A program of the consumer: one that uses every entry point, with type assertions that fail on `any`. */
const CONSUMER = `
import { CardStatusError, CheckingTerminal, InvalidInputError, loadGateConfig, SW, USAGE_STATE, verifySymReceipt, type GateDecision, type Receipt } from 'eticket';
import { BackofficeHolderChecker, HolderRecordError, holderRecord, isRealName, totp, type RealNameCheck } from 'eticket';
import { EticketCard, EmulatorTransport, MemoryBackend } from 'eticket/emulator';
import type { PcscTransportOptions } from 'eticket/pcsc';
import { World } from 'eticket/testing';
import { loadVectorFiles, vectorFiles } from 'eticket/vectors';

// @ts-expect-error a gate goes in or out, nothing else: the declarations are real types, not any
const wrongWay: Parameters<CheckingTerminal['passGate']>[0] = 'sideways';
const options: PcscTransportOptions = { reader: 'Virtual PCD 00 00', agent: { env: { PCSCLITE_CSOCK_NAME: '/run/pcscd/pcscd.comm' } } };
// @ts-expect-error pcsclite runs in the PC/SC agent process: there is no binding to hand in any more
const inProcess: PcscTransportOptions = { binding: () => undefined };
void [wrongWay, options, inProcess, EmulatorTransport];

const world = World.create('rsa');
const { session, issuing, credentials, card } = await world.newCard();
const face = world.ticketServer.createTicket({ serviceDate: new Date().toISOString().slice(0, 10), origin: 'BJS', train: 'G1' });
await issuing.load(world.authority.issue(face, credentials).sealed);
const gate = world.checkingTerminal(session, { mode: 'sym', station: 'BJS' });
const { decision, receipt }: { decision: GateDecision; receipt?: Receipt } = await gate.passGate('entry');
const checked = verifySymReceipt(world.masterKey, card.persistent.serial, receipt!.encoded, receipt!.sym!);
console.log('sym', decision.pass, checked.receipt.usage?.state === USAGE_STATE.INSIDE);

try {
  await issuing.load(world.authority.issue(face, credentials).sealed);
} catch (e) {
  console.log('duplicate', e instanceof CardStatusError && e.sw === SW.ALREADY_EXISTS);
}
try {
  loadGateConfig('/nonexistent-gate', { passphrase: 'x' });
} catch (e) {
  console.log('gate config', e instanceof InvalidInputError);
}
const blank = EticketCard.create(new MemoryBackend(), { suite: 'rsa' });
console.log('blank card', blank.persistent.serial.length);
console.log('vectors', loadVectorFiles(vectorFiles()).length);

// Real-name: RFC 6238 Appendix B (SHA-1, T = 59 s), the record's checks, the tap result's type.
console.log('totp', totp(new TextEncoder().encode('12345678901234567890'), 59, { algorithm: 'SHA1', digits: 8, period: 30 }));
try {
  holderRecord({ name: 'Li Wei', document: { type: 'id-card', number: '' } });
} catch (e) {
  console.log('holder', e instanceof HolderRecordError, isRealName(face));
}
// @ts-expect-error a real-name check is checked, not_checked or mismatch, nothing else
const wrongStatus: RealNameCheck['status'] = 'maybe';
void [wrongStatus, BackofficeHolderChecker];
`;

beforeAll(() => {
  // dist/ is fresh (the test setup built it): pack without running the build again.
  const packOut = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', env: npmEnv() });
  packed = JSON.parse(packOut)[0];
  mkdirSync(project);
  installOffline(root, join(work, packed.filename), project);

  // The consumer's sources: a program of its own, the README sample, the examples; compiled with --strict.
  const src = join(project, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'consumer.ts'), CONSUMER);
  writeFileSync(join(src, 'readme-sample.ts'), /```ts\n([\s\S]*?)```/.exec(readFileSync(join(root, 'README.md'), 'utf8'))![1]);
  for (const f of readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts'))) copyFileSync(join(root, 'examples', f), join(src, f));
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        // The package's own declarations are checked too: they must compile in a consumer's strict project.
        skipLibCheck: false,
        outDir: 'out',
        rootDir: 'src',
        typeRoots: [join(root, 'node_modules', '@types')],
        types: ['node'],
      },
      include: ['src'],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { cwd: project, encoding: 'utf8' });
  compile = { status: tsc.status, output: tsc.stdout + tsc.stderr };
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Run a compiled program of the consumer; killed (and the test failed) if it outlives a generous bound. */
function node(file: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(out, file), ...args], { cwd: project, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not exit within 180 s; killed. stdout: ${stdout.slice(-300)} stderr: ${stderr.slice(-300)}`));
    }, 180_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('the packed package', () => {
  it('npm pack lists the compiled package and no test, bench, CI file, tool or key', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'bin/eticket.mjs', 'dist/entry/index.js', 'dist/entry/index.d.ts', 'dist/host/cli/main.js', 'dist/apdu-spec/protocol.json', 'dist/card/vpcd-child-main.js', 'dist/host/transport/pcsc-agent.cjs']));
    const forbidden = paths.filter(
      (p) =>
        /(^|\/)(test|bench|tools|\.ci|node_modules)\//.test(p) ||
        /\.test\.|\.tsbuildinfo|run-cli\.|generate\.|make-keys|test-only|\.pem$|\.key$/.test(p) ||
        p.startsWith('test-vectors/keys/') ||
        p.startsWith('dist/test-vectors/keys/') ||
        (p.endsWith('.ts') && !p.endsWith('.d.ts') && !p.startsWith('examples/')),
    );
    expect(forbidden).toEqual([]);
  });

  it('installs offline with only its runtime dependencies: tsx, vitest and typescript stay behind', () => {
    const installed = readdirSync(join(project, 'node_modules'));
    expect(installed).toEqual(expect.arrayContaining(['eticket', 'commander', 'node-forge', '@noble']));
    for (const dev of ['tsx', 'vitest', 'typescript', 'typedoc', 'fast-check']) expect(installed).not.toContain(dev);
  });

  it('tsc --strict compiles a consumer, the README sample and the examples against its declarations', () => {
    expect(compile.output).toBe('');
    expect(compile.status).toBe(0);
    for (const f of ['consumer.js', 'readme-sample.js', 'production-gate.js', 'issuing-kiosk.js', 'qa-vectors.js']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  // Every vector file of the checkout ships (protocol v2: 9 areas per suite).
  const checkoutVectorFiles = readdirSync(join(root, 'test-vectors')).filter((f) => /^[a-z0-9]+-[a-z-]+\.json$/.test(f)).length;

  it('a consumer program runs: sym tap with a receipt the back office verifies, typed errors, every entry point', async () => {
    const r = await node('consumer.js');
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['sym true true', 'duplicate true', 'gate config true', 'blank card 8', `vectors ${checkoutVectorFiles}`, 'totp 94287082', 'holder true false']);
  });

  it("the README's sample runs from the installed package", async () => {
    const r = await node('readme-sample.js');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^PASS 1$/m);
    expect(r.stdout).toMatch(/^LOAD 6a89 ALREADY_EXISTS$/m);
  });

  it('only the entry points are importable: a repository path inside the package is refused', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('eticket/host/checking.js')"], { cwd: project, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });
});

describe('the examples, from the installed package', () => {
  const bin = () => join(project, 'node_modules', 'eticket', 'bin', 'eticket.mjs');
  const office = (): CliEnv => ({ cwd: project, home: join(project, 'office'), bin: bin() });

  it('the installed eticket CLI runs (compiled) and its --help names every command group', async () => {
    const r = await cli(office(), '--help');
    expect(r.code).toBe(0);
    for (const c of ['init', 'card', 'issue', 'gate', 'provision-gate', 'vectors']) expect(r.stdout).toContain(c);
    // The benchmark stays behind: simulate says where it runs (exit 1, one line), no module-not-found trace.
    const sim = await cli(office(), 'simulate', '--duration', '1');
    expect(sim.code).toBe(1);
    expect(sim.stderr.trim()).toMatch(/^eticket: eticket simulate runs from a checkout of eticket \(the benchmark is not in the package\)/);
  });

  it('issuing kiosk: authorised by the back office (EXTERNAL AUTHENTICATE), loads the tickets waiting for the card; a gate credential is refused', async () => {
    const env = office();
    expect((await cli(env, 'init', '--operator', 'CR')).code).toBe(0);
    expect((await cli(env, 'card', 'create', 'kiosk.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'kiosk.img')).code).toBe(0);
    writeFileSync(join(project, 'tickets.csv'), 'serviceDate,train,origin,destination,seat\n2030-01-15,G1,BJS,SHH,01A\n2030-01-15,G7,SHH,BJS,02B\n');
    // Sealed to the card and waiting in the store (--out: not loaded now).
    const sealed = await cli(env, 'issue', '--card', 'kiosk.img', '--from', 'tickets.csv', '--out', 'batch.jsonl');
    expect(sealed.stderr).toBe('');
    expect(sealed.code).toBe(0);
    const clientEnv: CliEnv = { ...env, vars: { ETICKET_CLIENT_PASSPHRASE: 'kiosk passphrase' } };
    expect((await cli(clientEnv, 'terminal', 'add', 'kiosk-1', '--kind', 'issuing', '--out', 'kiosk-1.json')).code).toBe(0);
    expect((await cli(clientEnv, 'terminal', 'add', 'gate-1', '--kind', 'gate', '--station', 'BJS', '--out', 'gate-1.json')).code).toBe(0);

    const serve = cliProcess(env, '--json', 'serve', '--port', '0');
    try {
      await waitUntil(() => serve.output().stdout.includes('"listening"'), 60_000, 'eticket serve to listen');
      const url = (JSON.parse(serve.output().stdout.split('\n').find((l) => l.includes('"listening"'))!) as { url: string }).url;
      const kiosk = (credential: string) => node('issuing-kiosk.js', [url, credential, '--card', 'kiosk.img'], { KIOSK_PASSPHRASE: 'kiosk passphrase' });

      // A gate has no business reading card identities: the back office refuses to sign the challenge.
      const gate = await kiosk('gate-1.json');
      expect(gate.stderr).toBe('');
      expect(gate.status).toBe(3);
      expect(gate.stdout).toMatch(/^back office: POST \/v1\/terminal\/authorization: 403 /m);

      const first = await kiosk('kiosk-1.json');
      expect(first.stderr).toBe('');
      expect(first.status).toBe(0);
      expect(first.stdout).toMatch(/2 ticket\(s\) waiting/);
      expect(first.stdout.match(/^loaded CR-20300115-\d+ \(slot \d+\)$/gm)).toHaveLength(2);
      expect(first.stdout).toMatch(/holds 2 ticket\(s\)/);

      // The back office learnt that the card took them: nothing waits on the second tap.
      const again = await kiosk('kiosk-1.json');
      expect(again.status).toBe(0);
      expect(again.stdout).toMatch(/0 ticket\(s\) waiting/);
      expect(again.stdout).toMatch(/holds 2 ticket\(s\)/);
    } finally {
      serve.child.kill('SIGINT');
      await serve.exited;
    }

    const listed = await cli(env, '--json', 'tickets', '--card', 'kiosk.img');
    expect(listed.code).toBe(0);
    expect((listed.json()[0].tickets as unknown[]).length).toBe(2);
  });

  it('QA vector run: passes with the TEST ONLY keys given, and says where to get them when they are not', async () => {
    const keys = join(root, 'test-vectors', 'keys');
    const r = await node('qa-vectors.js', ['--keys', keys, '--area', 'read-verify', '--junit', 'vectors.xml']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^rsa-read-verify +\d+ +\d+ +0 +0$/m);
    expect(r.stdout).toMatch(/^sm9-read-verify +\d+ +\d+ +0 +0$/m);
    const junit = readFileSync(join(project, 'vectors.xml'), 'utf8');
    expect(junit).toMatch(/<testsuites[^>]* failures="0"/);
    expect(junit).toMatch(/<testsuite name="rsa-read-verify"/);

    // Its own temporary directory, to see that the run leaves no card images behind when it cannot start.
    const scratch = join(work, 'qa-tmp');
    mkdirSync(scratch);
    const wrong = await node('qa-vectors.js', ['--keys', project, '--area', 'read-verify'], { TMPDIR: scratch });
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/InvalidInputError: .* holds no TEST ONLY profile/);
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('the installed CLI runs the vectors only with the TEST ONLY keys named (the package has none)', async () => {
    const env: CliEnv = { cwd: project, bin: join(project, 'node_modules', 'eticket', 'bin', 'eticket.mjs'), vars: { ETICKET_TEST_KEYS: undefined } };
    const without = await cli(env, 'vectors', 'run', '--area', 'read-verify');
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/the vectors need the TEST ONLY keys, which the eticket package does not carry/);
    const withKeys = await cli(env, 'vectors', 'run', '--area', 'read-verify', '--keys', join(root, 'test-vectors', 'keys'));
    expect(withKeys.stderr).toBe('');
    expect(withKeys.code).toBe(0);
    expect(withKeys.stdout).toMatch(/^total +\d+ +\d+ +0 +0$/m);
  });
});

const wantPcsc = process.env.ETICKET_PCSC === '1';
const stack = wantPcsc ? pcscStack() : { ok: false, reason: 'set ETICKET_PCSC=1 to run the production gate example against pcscd + vpcd' };
if (!stack.ok) console.log(`skipping the production gate example: ${stack.reason}`);

describe.skipIf(!stack.ok)('the production gate example over pcscd + vpcd, from the installed package', () => {
  let release: () => void = () => undefined;
  beforeAll(async () => {
    release = await lockVpcd();
  });
  afterAll(() => release());

  it('keys from its gate directory, a card served by the vpcd bridge: PASS, then REJECT already_inside', async () => {
    const env: CliEnv = { cwd: project, home: join(project, 'office-gate'), bin: join(project, 'node_modules', 'eticket', 'bin', 'eticket.mjs'), vars: { ETICKET_GATE_PASSPHRASE: 'gate passphrase' } };
    expect((await cli(env, 'init', '--operator', 'CR')).code).toBe(0);
    expect((await cli(env, 'card', 'create', 'gate.img')).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', 'gate.img')).code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    expect((await cli(env, 'issue', '--card', 'gate.img', '--service-date', today, '--train', 'G1', '--origin', 'BJS', '--tid', 'GATE-1')).code).toBe(0);
    const provisioned = await cli(env, 'provision-gate', 'gate-bjs', '--gate-id', 'BJS-G07', '--station', 'BJS');
    expect(provisioned.stderr).toBe('');
    expect(provisioned.code).toBe(0);

    const serve = cliProcess(env, 'card', 'serve', '--card', 'gate.img', '--slot', '1');
    try {
      await waitUntil(() => serve.output().stdout.includes('Ctrl-C'), 60_000, 'card serve to put the card into the reader');
      const gate = (args: string[]) => node('production-gate.js', ['gate-bjs', VPCD_READER_1, 'entry', '--once', ...args], { ETICKET_GATE_PASSPHRASE: 'gate passphrase' });
      const first = await gate([]);
      expect(first.status, first.stderr).toBe(0);
      const tap = JSON.parse(first.stdout.trim());
      expect(tap).toMatchObject({ pass: true, gate: 'BJS-G07', tid: 'GATE-1', counter: 1 });
      expect(tap.receipt).toMatch(/^B4/);

      const second = await gate([]);
      expect(second.status).toBe(6);
      expect(JSON.parse(second.stdout.trim())).toMatchObject({ pass: false, reason: 'already_inside', tid: 'GATE-1' });

      const wrongPass = await node('production-gate.js', ['gate-bjs', VPCD_READER_1, 'entry', '--once'], { ETICKET_GATE_PASSPHRASE: 'not it' });
      expect(wrongPass.status).not.toBe(0);
      expect(wrongPass.stderr).toMatch(/CryptoError: cannot decrypt the private key: wrong passphrase/);
    } finally {
      serve.child.kill('SIGINT');
      await serve.exited;
    }
  });
});
