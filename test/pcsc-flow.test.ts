// The real card over the real stack: pcsclite → pcscd → vpcd → bridge process → EticketCard on an image file.
// Patent flows in both session modes, programs we did not write (opensc-tool, scriptor), and pulled cards.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.ts';
import { startVpcdChild, type VpcdChild } from '../card/vpcd-child.ts';
import type { CheckingTerminal, TicketView } from '../host/checking.ts';
import type { World } from '../testing/world.ts';
import { IssuingTerminal } from '../host/issuing.ts';
import { parseFci } from '../sdk/commands/select.ts';
import { CardSession, type TraceEntry } from '../host/session.ts';
import { EmulatorTransport } from '../host/transport/emulator.ts';
import { listReaders, PcscTransport, waitForCard } from '../host/transport/pcsc.ts';
import type { CardCredentials } from '../sdk/roles/trust.ts';
import { CardRemovedError, CardStatusError, TicketNotFoundError, TransportTimeoutError } from '../sdk/errors.ts';
import { AID, USAGE_STATE, type SuiteName } from '../sdk/spec.ts';
import { lockVpcd, pcscStack, pullCard, VPCD_READER_0, waitUntil, VPCD_LOCK_HOOK_MS } from './helpers/pcsc-stack.ts';
import { pauseMarker, type PausePoint } from './helpers/pausing-card.ts';
import { SUITES, today, worldFor } from './helpers/world.ts';

const APPLET = fileURLToPath(new URL('../card/applet.ts', import.meta.url));
const PAUSING = fileURLToPath(new URL('./helpers/pausing-card.ts', import.meta.url));
const READER = VPCD_READER_0;
const PORT = 35963;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();

const stack = pcscStack();
if (!stack.ok) console.warn(`[skip] PC/SC flow tests: ${stack.reason}`);

/** The programs CI installs (pcsc-tools, opensc); required exactly when the stack is. */
function toolsState(): { ok: boolean; reason: string } {
  const missing = ['opensc-tool', 'scriptor'].filter(
    (tool) => !['/usr/bin', '/usr/local/bin', '/bin'].some((dir) => existsSync(join(dir, tool))),
  );
  if (!missing.length) return { ok: true, reason: '' };
  const reason = `${missing.join(', ')} not installed (apt-get install opensc pcsc-tools)`;
  if (process.env.ETICKET_PCSC === '1') throw new Error(`ETICKET_PCSC=1 but ${reason}`);
  return { ok: false, reason };
}
const tools = stack.ok ? toolsState() : { ok: false, reason: stack.reason };
if (stack.ok && !tools.ok) console.warn(`[skip] opensc-tool / scriptor tests: ${tools.reason}`);

interface Contents {
  nextSeq: number;
  tombstones: number;
  /** TID → "state S counter C" */
  tickets: Record<string, string>;
}

/** What a card image holds, in terms a test can compare (opening it also recovers an interrupted commit). */
function contents(path: string): Contents {
  const s = EticketCard.open(path).persistent;
  return {
    nextSeq: s.nextSeq,
    tombstones: s.tombstones.length,
    tickets: Object.fromEntries(s.tickets.map((t) => [t.tid, `state ${t.usage.state} counter ${t.usage.counter}`])),
  };
}

function without(c: Contents, tid: string): Record<string, string> {
  const { [tid]: _, ...rest } = c.tickets;
  return rest;
}

function run(tool: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(tool, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${tool} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** scriptor's transcript as [command, response] pairs of uppercase hex (response = data ‖ SW). */
function parseScriptor(out: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const block of out.split(/^> /m).slice(1)) {
    const [command = '', ...rest] = block.split('\n');
    const answer = rest.join(' ').replace(/^< /, '').split(' : ')[0]!;
    pairs.push([command.replace(/\s+/g, '').toUpperCase(), answer.replace(/\s+/g, '').toUpperCase()]);
  }
  return pairs;
}

/** opensc-tool -s output as one response (data ‖ SW) per command sent. */
function parseOpensc(out: string): string[] {
  const responses: string[] = [];
  for (const block of out.split(/^Sending: /m).slice(1)) {
    const sw = /Received \(SW1=0x([0-9A-F]{2}), SW2=0x([0-9A-F]{2})\)/i.exec(block);
    if (!sw) throw new Error(`no status word in opensc-tool output: ${block}`);
    // Dump lines: 16 bytes as "XX " in the first 48 columns, then an ASCII column that must not be read as hex.
    const dump = block.split('\n').slice(2).map((line) => line.slice(0, 48).match(/[0-9A-F]{2}/gi)?.join('') ?? '').join('');
    responses.push(`${dump}${sw[1]}${sw[2]}`.toUpperCase());
  }
  return responses;
}

/** Issue, read, verify, record usage, a gate pass, delete: the patent's steps on one session. */
async function patentFlow(w: World, session: CardSession, credentials: CardCredentials, tag: string): Promise<void> {
  // A locked card tells its serial and certificates only after EXTERNAL AUTHENTICATE (the authority signs its challenge).
  const issuing = w.issuingTerminal(session);
  const info = await issuing.open();
  expect(info.lifecycle).toBe('OPERATIONAL');
  expect(hex(info.serial)).toBe(hex(credentials.serial));
  // GET DATA of the card's credentials: an RSA certificate is longer than one short response.
  const creds = await issuing.credentials();
  expect(creds.encryptionCertificate && hex(creds.encryptionCertificate)).toBe(credentials.encryptionCertificate && hex(credentials.encryptionCertificate));
  expect(creds.identity).toBe(credentials.identity);
  const before = await issuing.capacity();

  const d = today(w);
  const a = w.ticketServer.createTicket({ serviceDate: d, train: `${tag}1`, origin: 'BJS', destination: 'SHH', seat: '1A' });
  const b = w.ticketServer.createTicket({ serviceDate: d, train: `${tag}2`, origin: 'TJN', destination: 'NKG', seat: '2B' });
  const loaded = [];
  for (const face of [a, b]) loaded.push(await issuing.load(w.authority.issue(face, creds).sealed));
  expect(loaded.map((l) => l.tid)).toEqual([a.tid, b.tid]);
  expect((await issuing.capacity()).tickets).toBe(before.tickets + 2);

  const gate = w.checkingTerminal(session, { station: 'BJS' });
  const mine = (await gate.readTickets({ date: d })).filter((t) => t.face.train?.startsWith(tag));
  expect(mine.map((t) => t.face.tid).sort()).toEqual([a.tid, b.tid].sort());

  const viewA = await gate.verifyTicket({ tid: a.tid });
  expect(viewA.face).toEqual({ ...a, version: 2, card: credentials.serial });
  expect(viewA.verificationCode).toBeDefined();
  const entry = await gate.recordUsage(viewA, 'ENTRY');
  expect(entry.counter).toBe(1);
  expect(entry.usage?.state).toBe(USAGE_STATE.INSIDE);

  const exit = await w.checkingTerminal(session, { station: 'SHH' }).passGate('exit', { train: a.train });
  expect(exit.decision).toMatchObject({ pass: true });
  expect(exit.receipt?.usage?.state).toBe(USAGE_STATE.EXITED);
  // The other gate mode: keys 4/5 as a per-card AES key the gate derives from the operator's master key.
  const inB = await w.checkingTerminal(session, { station: 'TJN', mode: 'sym' }).passGate('entry', { train: b.train });
  expect(inB.decision).toMatchObject({ pass: true });
  expect((await w.checkingTerminal(session, { station: 'TJN' }).passGate('entry', { train: b.train })).decision.reason).toBe('already_inside');

  for (const face of [a, b]) {
    const receipt = await gate.deleteTicket(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }));
    expect(receipt.tid).toBe(face.tid);
  }
  const voided = await gate.verifyTicket({ tid: a.tid }).catch((e: unknown) => e);
  expect(voided).toBeInstanceOf(TicketNotFoundError);
  expect((voided as TicketNotFoundError).status).toBe('void');
  expect((await issuing.capacity()).tickets).toBe(before.tickets);
}

describe.skipIf(!stack.ok)('the e-ticket card over pcsclite → pcscd → vpcd', () => {
  let release: () => void = () => undefined;
  let dir = '';
  let card: VpcdChild | undefined;
  const transports: PcscTransport[] = [];

  /** Put a card image into the reader: applet.ts's openCardImage, or the pausing one for mid-commit pulls. */
  const serve = async (path: string, pause?: PausePoint): Promise<VpcdChild> => {
    await pullCard(card);
    card = await startVpcdChild(
      pause
        ? { module: PAUSING, export: 'openPausingCardImage', args: [path, pause] }
        : { module: APPLET, export: 'openCardImage', args: [path] },
      { port: PORT },
    );
    await waitForCard(READER, { timeoutMs: 5000 });
    return card;
  };

  const transport = (options: ConstructorParameters<typeof PcscTransport>[0] = {}): PcscTransport => {
    const t = new PcscTransport({ reader: READER, timeoutMs: 5000, removalTimeoutMs: 1500, ...options });
    transports.push(t);
    return t;
  };

  const disconnectAll = async (): Promise<void> => {
    await Promise.all(transports.splice(0).map((t) => t.disconnect().catch(() => undefined)));
  };

  beforeAll(async () => {
    release = await lockVpcd();
    dir = mkdtempSync(join(tmpdir(), 'eticket-pcsc-flow-'));
  }, VPCD_LOCK_HOOK_MS);

  afterAll(async () => {
    await disconnectAll();
    await pullCard(card);
    release();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe.each(SUITES)('%s card', (suite: SuiteName) => {
    let w: World;
    let image = '';
    let credentials: CardCredentials;

    beforeAll(async () => {
      w = worldFor(suite);
      image = join(dir, `${suite}.img`);
      // Personalised in process on the image file; from here on only the card process touches it.
      credentials = (await w.newCard({ backend: image })).credentials;
      await serve(image);
    });

    afterAll(disconnectAll);

    it('runs issue, read, verify, usage, gate and delete with extended-length APDUs', async () => {
      const trace: TraceEntry[] = [];
      const session = new CardSession(transport(), { trace: (e) => trace.push(e) });
      expect(session.extended).toBe(true);
      expect(hex(await session.connect())).toBe(hex(card!.atr));
      await patentFlow(w, session, credentials, 'X');
      // The long parts crossed pcscd whole: extended Lc / Le, never chaining or GET RESPONSE.
      expect(trace.filter((e) => e.apdu.length > 261).every((e) => e.apdu[4] === 0)).toBe(true);
      expect(trace.some((e) => (e.apdu[0]! & 0x10) !== 0)).toBe(false);
      if (suite === 'rsa') {
        // RSA sizes guarantee both directions are long: a 256-byte wrapped key in LOAD, certificates in GET DATA.
        expect(trace.some((e) => e.command === 'LOAD' && e.apdu.length > 261)).toBe(true);
        expect(trace.some((e) => e.command === 'GET DATA' && e.response.length > 258)).toBe(true);
      }
      expect(trace.some((e) => e.command === 'GET RESPONSE')).toBe(false);
      await session.close();
    });

    it('runs the same flow with short APDUs only: chaining and 61XX / GET RESPONSE through pcscd', async () => {
      const trace: TraceEntry[] = [];
      const t = transport({ extendedLength: false });
      const session = new CardSession(t, { trace: (e) => trace.push(e) });
      expect(session.extended).toBe(false);
      expect(t.info.maxResponse).toBe(258);
      await patentFlow(w, session, credentials, 'S');
      expect(trace.every((e) => e.apdu.length <= 5 + 255 + 1 && e.response.length <= 258)).toBe(true);
      const chained = trace.filter((e) => (e.apdu[0]! & 0x10) !== 0);
      expect(chained.every((e) => e.sw === 0x9000)).toBe(true);
      if (suite === 'rsa') {
        expect(chained.some((e) => e.command === 'LOAD')).toBe(true);
        expect(trace.some((e) => e.command === 'GET DATA' && (e.sw & 0xff00) === 0x6100)).toBe(true);
        expect(trace.some((e) => e.command === 'GET RESPONSE' && e.sw === 0x9000)).toBe(true);
      }
      await session.close();
    });

    it('a card pulled between commands gives CardRemovedError and keeps its tickets', async () => {
      const session = new CardSession(transport());
      const issuing = w.issuingTerminal(session);
      await issuing.open();
      const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'R1', origin: 'BJS', destination: 'SHH' });
      await issuing.load(w.authority.issue(face, credentials).sealed);
      const gate = w.checkingTerminal(session);
      const view = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
      const held = contents(image); // the card is idle: no journal, a plain read

      await card!.kill();
      const started = Date.now();
      const error = await gate.recordUsage(view, 'ENTRY').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CardRemovedError);
      expect(Date.now() - started).toBeLessThan(3000);
      await expect(session.send('GET DATA', { p2: 0xd8 })).rejects.toBeInstanceOf(CardRemovedError);
      expect(contents(image)).toEqual(held);
      expect(held.tickets[face.tid]).toBe(`state ${USAGE_STATE.NEW} counter 0`);
    });

    /**
     * Pull the card while `command` is in flight, stopped at `at` inside its commit (the card process says when),
     * and return the error the host saw plus the image's contents before and after recovery.
     */
    const pullDuring = async (at: PausePoint, command: (session: CardSession) => Promise<unknown>, prepare?: (session: CardSession) => Promise<void>) => {
      rmSync(pauseMarker(image), { force: true });
      await serve(image, at);
      const session = new CardSession(transport());
      await prepare?.(session);
      const before = contents(image);
      const pending = command(session).then(
        () => new Error('the command completed although its card was pulled'),
        (e: unknown) => e,
      );
      await waitUntil(() => existsSync(pauseMarker(image)), 10_000, `the card process to stop inside its commit (${at})`, 5);
      const journalAtPull = existsSync(`${image}.journal`);
      const pulledAt = Date.now();
      await card!.kill();
      const error = await pending;
      const took = Date.now() - pulledAt;
      unlinkSync(pauseMarker(image));
      const after = contents(image); // EticketCard.open recovers: rolls a whole journal forward, drops a torn one
      expect(existsSync(`${image}.journal`)).toBe(false);
      return { error, took, before, after, journalAtPull };
    };

    const expectTyped = (error: unknown, took: number): void => {
      expect(error instanceof CardRemovedError || error instanceof TransportTimeoutError, String(error)).toBe(true);
      expect(took).toBeLessThan(6000);
    };

    it('a card pulled during LOAD before its commit keeps exactly the tickets it had', async () => {
      const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'R2' });
      const sealed = w.authority.issue(face, credentials).sealed;
      const r = await pullDuring('before-journal', (s) => new IssuingTerminal(s).load(sealed));
      expectTyped(r.error, r.took);
      expect(r.journalAtPull).toBe(false);
      expect(r.after).toEqual(r.before);
      expect(r.after.tickets[face.tid]).toBeUndefined();
    });

    it('a card pulled during LOAD with its journal written comes back holding the new ticket, whole', async () => {
      const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'R3' });
      const sealed = w.authority.issue(face, credentials).sealed;
      const r = await pullDuring('after-journal', (s) => new IssuingTerminal(s).load(sealed));
      expectTyped(r.error, r.took);
      expect(r.journalAtPull).toBe(true);
      expect(r.before.tickets[face.tid]).toBeUndefined();
      expect(r.after.tickets[face.tid]).toBe(`state ${USAGE_STATE.NEW} counter 0`);
      expect(without(r.after, face.tid)).toEqual(r.before.tickets);
      expect(r.after.nextSeq).toBe(r.before.nextSeq + 1);
      // The recovered ticket is usable, not just present (checked in process: no card process holds the image now).
      const checker = w.checkingTerminal(new CardSession(new EmulatorTransport(EticketCard.open(image))));
      await checker.select();
      expect((await checker.verifyTicket({ tid: face.tid })).face).toEqual({ ...face, version: 2, card: credentials.serial });
    });

    it('a card pulled during WRITE USAGE with a torn image write comes back with the usage applied, whole', async () => {
      const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'R4', origin: 'BJS' });
      // Loaded in process while no card process runs, so the pausing card's one stop is the WRITE USAGE.
      expect(card?.running).toBe(false);
      const local = EticketCard.open(image);
      await new IssuingTerminal(new CardSession(new EmulatorTransport(local))).load(w.authority.issue(face, credentials).sealed);
      let gate: CheckingTerminal | undefined;
      let view: TicketView | undefined;
      const r = await pullDuring(
        'after-image-write',
        () => gate!.recordUsage(view!, 'ENTRY'),
        async (s) => {
          gate = w.checkingTerminal(s);
          await gate.select();
          view = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false });
        },
      );
      expectTyped(r.error, r.took);
      expect(r.journalAtPull).toBe(true);
      expect(r.before.tickets[face.tid]).toBe(`state ${USAGE_STATE.NEW} counter 0`);
      expect(r.after.tickets[face.tid]).toBe(`state ${USAGE_STATE.INSIDE} counter 1`);
      expect(without(r.after, face.tid)).toEqual(without(r.before, face.tid));
      expect(r.after.nextSeq).toBe(r.before.nextSeq);
    });
  });

  describe.skipIf(!tools.ok || !SUITES.includes('rsa'))('programs we did not write (rsa card)', () => {
    let image = '';
    let credentials: CardCredentials;
    let cert = '';
    const select = `00A40400${hex(Uint8Array.of(AID.length))}${hex(AID)}`;

    beforeAll(async () => {
      image = join(dir, 'tools.img');
      // A card still in personalisation (its key generated and certified, not locked): its GET DATA objects are open,
      // as they are in the issuer's secure facility, so programs that cannot sign an EXTERNAL AUTHENTICATE read them.
      const blank = EticketCard.create(image, { suite: 'rsa' });
      const s = new CardSession(new EmulatorTransport(blank));
      await s.select();
      const serial = (await s.send('GET DATA', { p2: 0xc6 })).data;
      const pub = (await s.send('GENERATE KEY', { p1: 0x01, p2: 0x00 })).data;
      const certificate = worldFor('rsa').keys.ca!.certifyCardKey(serial, 'encryption', pub);
      await s.send('PUT DATA', { p2: 0xd5, data: certificate });
      credentials = { suite: 'rsa', serial, encryptionCertificate: certificate };
      cert = hex(credentials.encryptionCertificate!);
      expect(cert.length / 2).toBeGreaterThan(256);
      await disconnectAll();
      await serve(image);
    });

    it('opensc-tool: SELECT gets 9000 and the FCI, an unknown AID 6A82, a long GET DATA comes back whole', async () => {
      const out = await run('opensc-tool', ['-r', READER, '-s', `${select}00`, '-s', '00A4040005A000000001', '-s', '80CA00D500']);
      const [fci, unknown, data] = parseOpensc(out);
      expect(fci!.slice(-4)).toBe('9000');
      // Protocol version 2: the FCI tells what the card is, not which one.
      expect(parseFci(Buffer.from(fci!.slice(0, -4), 'hex')).lifecycle).toBe('PERSONALIZING');
      expect(fci).not.toContain(hex(credentials.serial));
      expect(unknown).toBe('6A82');
      // opensc answered the card's 61XX with GET RESPONSE itself.
      expect(data).toBe(`${cert}9000`);
    });

    it('scriptor: malformed commands get their status words; a long GET DATA by 61XX + GET RESPONSE and by extended Le', async () => {
      const certLength = cert.length / 2;
      const getResponses = Math.ceil((certLength - 256) / 256);
      const script = [
        `${select}00`,
        `${select.slice(0, 8)}${hex(Uint8Array.of(AID.length + 1))}${hex(AID)}`, // Lc one more than the data
        '80000000', // unknown INS
        `A0${select.slice(2)}`, // CLA A0: not ours
        '80CA00C604', // GET DATA C6 (open while personalising) with too small an Le
        '80CA00C608',
        '80CA00D500',
        ...Array.from({ length: getResponses }, () => '00C0000000'),
        '80CA00D5000000', // extended Le 0000: everything at once
      ];
      const out = await run('scriptor', ['-r', READER, '-p', 'T=1'], script.map((c) => c.replace(/(..)/g, '$1 ').trim()).join('\n') + '\n');
      const pairs = parseScriptor(out);
      expect(pairs.map((p) => p[0])).toEqual(script);
      const answers = pairs.map((p) => p[1]);
      expect(answers[0]!.slice(-4)).toBe('9000');
      expect(answers.slice(1, 5)).toEqual(['6700', '6D00', '6E00', '6C08']);
      expect(answers[5]).toMatch(/^[0-9A-F]{16}9000$/);
      // First 256 bytes with 61XX, then GET RESPONSE until 9000; the pieces are the certificate.
      const chunks = answers.slice(6, 7 + getResponses);
      expect(chunks[0]!.slice(-4)).toMatch(/^61/);
      expect(chunks.at(-1)!.slice(-4)).toBe('9000');
      expect(chunks.map((c) => c.slice(0, -4)).join('')).toBe(cert);
      expect(answers.at(-1)).toBe(`${cert}9000`);
    });
  });
});
