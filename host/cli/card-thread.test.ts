// The card image on its own worker thread (host/cli/card-thread.ts, as compiled in dist/ where the CLI runs it): the
// same answers and the same image as the in-process card, the image's lock, a corrupt image told apart, and the
// journal emptied both at disconnect and when the process exits without it.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../../card/applet.js';
import { hex } from '../../sdk/bytes.js';
import { TicketServer } from '../../sdk/roles/ticket-server.js';
import { World } from '../../testing/world.js';
import { EmulatorTransport } from '../transport/emulator.js';
import { CardSession } from '../session.js';
import type { Transport } from '../transport/transport.js';

// The compiled modules (the worker exists only there), and their error classes: instanceof needs the same copy.
const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const thread = (await import(join(DIST, 'host/cli/card-thread.js'))) as typeof import('./card-thread.js');
const { LockHeldError } = (await import(join(DIST, 'sdk/file-lock.js'))) as typeof import('../../sdk/file-lock.js');
const { CardRemovedError } = (await import(join(DIST, 'sdk/errors.js'))) as typeof import('../../sdk/errors.js');

const world = World.create('rsa');
const dir = mkdtempSync(join(tmpdir(), 'eticket-card-thread-'));
const blank = join(dir, 'personalised.img');
let sealed: Uint8Array;
let tid: string;

/** A fresh copy of the personalised card, its journal empty. */
function copy(name: string): string {
  const p = join(dir, name);
  copyFileSync(blank, p);
  rmSync(`${p}.journal`, { force: true });
  return p;
}

function journalBytes(image: string): number {
  return existsSync(`${image}.journal`) ? statSync(`${image}.journal`).size : 0;
}

function ticketsOn(image: string): string[] {
  return EticketCard.open(image).persistent.tickets.map((t) => t.tid);
}

async function load(transport: Transport) {
  const session = new CardSession(transport);
  await session.connect();
  const answer = await world.issuingTerminal(session).load(sealed);
  return { session, answer };
}

beforeAll(async () => {
  const c = await world.newCard({ backend: blank });
  c.card.checkpoint();
  const face = new TicketServer(world.operator).createTicket({ serviceDate: '2030-01-15', train: 'G1', origin: 'BJS', destination: 'SHH', departure: 420, seat: '1A' });
  const signed = world.authority.sign(face, c.credentials);
  sealed = world.authority.seal(signed, c.credentials);
  tid = face.tid;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a card image on its own thread', () => {
  it('takes a LOAD as the in-process card does: the same answer, the same image bytes, and an empty journal after disconnect', async () => {
    const inProcess = copy('a.img');
    const onThread = copy('b.img');
    const here = await load(new EmulatorTransport(EticketCard.open(inProcess)));
    await here.session.close();
    const there = await load(await thread.CardThreadTransport.open(onThread));
    expect(there.answer).toEqual(here.answer);
    expect(there.answer.tid).toBe(tid);
    await there.session.close();
    expect(journalBytes(onThread)).toBe(0);
    EticketCard.open(inProcess).checkpoint();
    expect(hex(readFileSync(onThread))).toBe(hex(readFileSync(inProcess)));
    expect(ticketsOn(onThread)).toEqual([tid]);
  });

  it('holds the image: a second open is refused with LockHeldError naming this process, and the first goes on working', async () => {
    const image = copy('c.img');
    const first = await thread.CardThreadTransport.open(image);
    const second = thread.CardThreadTransport.open(image);
    await expect(second).rejects.toBeInstanceOf(LockHeldError);
    await expect(second).rejects.toThrow(new RegExp(`in use by process ${process.pid}`));
    const { session, answer } = await load(first);
    expect(answer.tid).toBe(tid);
    await session.close();
    // Released at close: the image opens again.
    const again = await thread.CardThreadTransport.open(image);
    await again.disconnect();
  });

  it('tells a corrupt image apart (CardThreadCorruptError), holding no lock afterwards', async () => {
    const image = copy('d.img');
    const bytes = readFileSync(image);
    bytes[bytes.length - 5] ^= 0xff; // inside the last record: its checksum no longer matches
    writeFileSync(image, bytes);
    await expect(thread.CardThreadTransport.open(image)).rejects.toBeInstanceOf(thread.CardThreadCorruptError);
    expect(existsSync(`${image}.lock`)).toBe(false);
  });

  it('fails every request after disconnect with CardRemovedError instead of hanging', async () => {
    const t = await thread.CardThreadTransport.open(copy('e.img'));
    await t.connect();
    await t.disconnect();
    await expect(t.transmit(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x00))).rejects.toBeInstanceOf(CardRemovedError);
  });

  it('empties the journal when the process exits without disconnecting (an error path), and the LOAD is on the card', () => {
    const image = copy('f.img');
    writeFileSync(join(dir, 'sealed.hex'), hex(sealed));
    // A process that loads through the thread and exits at once, skipping disconnect.
    const script = `
      const { CardThreadTransport } = await import(${JSON.stringify(join(DIST, 'host/cli/card-thread.js'))});
      const { CardSession } = await import(${JSON.stringify(join(DIST, 'host/session.js'))});
      const { IssuingTerminal } = await import(${JSON.stringify(join(DIST, 'host/issuing.js'))});
      const { fromHex } = await import(${JSON.stringify(join(DIST, 'sdk/bytes.js'))});
      const { readFileSync } = await import('node:fs');
      const s = new CardSession(await CardThreadTransport.open(${JSON.stringify(image)}));
      await s.connect();
      const r = await new IssuingTerminal(s).load(fromHex(readFileSync(${JSON.stringify(join(dir, 'sealed.hex'))}, 'utf8')));
      process.stdout.write(r.tid);
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(tid);
    expect(journalBytes(image)).toBe(0);
    expect(existsSync(`${image}.lock`)).toBe(false);
    expect(ticketsOn(image)).toEqual([tid]);
  });
});
