// Tearing: a power cut at every NVM write point of LOAD, WRITE USAGE and DELETE leaves the card as it
// was before the command or as it is after it, never in between, on the memory and the file backend.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EticketCard } from './applet.js';
import { FaultInjector, FileBackend, MemoryBackend, PowerCutError, type NvmBackend } from './nvm.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { IssuingTerminal } from '../host/issuing.js';
import { hex } from '../sdk/bytes.js';
import { today, worldFor } from '../test/helpers/world.js';
import type { World } from '../testing/world.js';
import { toImageVersion1 } from '../test/helpers/image-v1.js';

const dir = mkdtempSync(join(tmpdir(), 'eticket-tear-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Op = (card: EticketCard) => Promise<void>;

/**
 * Run `op` on a card opened from `image`, with a cut
 * at write `cutAt`. Returns the image found when the card is opened again, and how many writes ran.
 */
async function attempt(makeBackend: () => NvmBackend, image: Uint8Array, op: Op, cutAt?: number) {
  const backend = makeBackend();
  backend.remove('journal');
  backend.write('image', 0, image);
  backend.truncate('image', image.length);
  const card = EticketCard.open(backend);
  const faults = new FaultInjector(cutAt);
  card.faults = faults;
  let cut = false;
  try {
    await op(card);
  } catch (e) {
    if (!(e instanceof PowerCutError)) throw e;
    cut = true;
  }
  const reopened = EticketCard.open(backend);
  return { image: reopened.image.slice(), writes: faults.writes, cut };
}

async function tearEveryWrite(makeBackend: () => NvmBackend, before: Uint8Array, op: Op) {
  const clean = await attempt(makeBackend, before, op);
  expect(clean.cut).toBe(false);
  const after = clean.image;
  expect(hex(after)).not.toBe(hex(before));
  expect(clean.writes).toBeGreaterThanOrEqual(2); // journal record, at least one page (and the journal removal, memory backend)
  const outcomes = { before: 0, after: 0 };
  for (let n = 0; n < clean.writes; n++) {
    const r = await attempt(makeBackend, before, op, n);
    expect(r.cut, `a cut was injected at write ${n}`).toBe(true);
    const h = hex(r.image);
    expect([hex(before), hex(after)], `state after a cut at write ${n} of ${clean.writes}`).toContain(h);
    outcomes[h === hex(before) ? 'before' : 'after']++;
  }
  // The first write (journal record) torn → old state; any later cut → journal rolled forward → new state.
  expect(outcomes.before).toBeGreaterThanOrEqual(1);
  expect(outcomes.after).toBeGreaterThanOrEqual(1);
  return { ...outcomes, image: after };
}

/** Both backends each tearing test runs on: in memory, and a file of its own. */
const BACKENDS = [
  ['memory', () => new MemoryBackend()],
  ['file', () => new FileBackend(join(dir, `card-${Math.random().toString(36).slice(2)}.img`), false)],
] as const;

/** A gate's WRITE USAGE of `event` for ticket `tid` on `card`: SELECT, VERIFY (RAM only: no write point), the write. */
async function recordUsageOn(w: World, card: EticketCard, tid: string, event: 'ENTRY' | 'EXIT'): Promise<void> {
  const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(card)));
  await gate.select();
  await gate.recordUsage(await gate.verifyTicket({ tid }, { verificationCode: false }), event);
}

describe.each(BACKENDS)('power cut at every NVM write (%s backend)', (_name, makeBackend) => {
  it('LOAD, WRITE USAGE and DELETE are each all-or-nothing', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'T1', origin: 'BJS' });
    const sealed = w.authority.issue(face, c.credentials).sealed;
    const session = (card: EticketCard) => new CardSession(new EmulatorTransport(card));

    // LOAD
    const blank = c.card.image.slice();
    await tearEveryWrite(makeBackend, blank, async (card) => {
      await new IssuingTerminal(session(card)).load(sealed);
    });
    await c.issuing.load(sealed);
    const loaded = c.card.image.slice();

    // WRITE USAGE: VERIFY (RAM only) then the write, on the reopened card
    await tearEveryWrite(makeBackend, loaded, (card) => recordUsageOn(w, card, face.tid, 'ENTRY'));

    // DELETE
    await tearEveryWrite(makeBackend, loaded, async (card) => {
      const gate = w.checkingTerminal(session(card));
      await gate.select();
      const view = await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }); // RAM only: no write point
      await gate.deleteTicket(view);
    });
  });
});

/** `make`'s backend, recording the size of every journal written to it. */
function recordingJournals(make: () => NvmBackend, sizes: number[]): () => NvmBackend {
  return () => {
    const b = make();
    return {
      description: b.description,
      read: (r) => b.read(r),
      write: (r, offset, bytes) => {
        if (r === 'journal') sizes.push(bytes.length);
        b.write(r, offset, bytes);
      },
      truncate: (r, n) => b.truncate(r, n),
      remove: (r) => b.remove(r),
      ...(b.map ? { map: (r: 'image' | 'journal') => b.map!(r) } : {}),
    };
  };
}

describe.each(BACKENDS)('power cut at every write of an in-place usage update (%s backend)', (_name, makeBackend) => {
  it('a WRITE USAGE whose usage record keeps its length journals only that record and the checksum, and is all-or-nothing', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'T2', origin: 'BJS', destination: 'BJS', maxEntries: 3 });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    const gate = w.checkingTerminal(c.session);
    await gate.select();
    await gate.recordUsage(await gate.verifyTicket({ tid: face.tid }, { verificationCode: false }), 'ENTRY');
    // Inside now, gate and station recorded: the EXIT below changes counter, state and time, not the record's length.
    const entered = c.card.image.slice();
    const journals: number[] = [];
    await tearEveryWrite(recordingJournals(makeBackend, journals), entered, (card) => recordUsageOn(w, card, face.tid, 'EXIT'));
    // A whole-image commit journals 256-byte pages; this one journals the 32-byte checksum and the A3 record.
    expect(journals.length).toBeGreaterThan(0);
    expect(Math.max(...journals), 'journal of an in-place usage update').toBeLessThan(256);
  });
});

describe.each(BACKENDS)('power cut at every write of a patched commit on a card holding tickets (%s backend)', (_name, makeBackend) => {
  it('a LOAD appended after three records, a DELETE that moves the records after it, and a usage update that lengthens a record in the middle are each all-or-nothing', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const faces = ['T4', 'T5', 'T6'].map((train) => w.ticketServer.createTicket({ serviceDate: today(w), train, origin: 'BJS', destination: 'BJS', maxEntries: 3 }));
    for (const f of faces) await c.issuing.load(w.authority.issue(f, c.credentials).sealed);
    await recordUsageOn(w, c.card, faces[2].tid, 'ENTRY');
    const held = c.card.image.slice();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'T7', origin: 'BJS' });
    const sealed = w.authority.issue(face, c.credentials).sealed;
    const journals: number[] = [];
    const load = await tearEveryWrite(recordingJournals(makeBackend, journals), held, async (card) => {
      await new IssuingTerminal(new CardSession(new EmulatorTransport(card))).load(sealed);
    });
    // A patch: the journal record is the new record and a few dozen bytes, not the 256-byte pages around them.
    expect(Math.max(...journals), 'journal of a patched LOAD').toBeLessThan(load.image.length - held.length + 128);
    expect(load.before + load.after).toBeGreaterThanOrEqual(3);
    await tearEveryWrite(makeBackend, held, async (card) => {
      const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(card)));
      await gate.select();
      await gate.deleteTicket(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }));
    });
    // The middle ticket's first usage adds the gate and station to its usage record: the third record moves.
    await tearEveryWrite(makeBackend, held, (card) => recordUsageOn(w, card, faces[1].tid, 'ENTRY'));
  });
});

describe.each(BACKENDS)('power cut at every write of the first commit on a version 1 image (%s backend)', (_name, makeBackend) => {
  it('the commit that migrates an image from version 1 to version 2 is all-or-nothing: the version 1 image as it was, or version 2 with the command', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'T3', origin: 'BJS', destination: 'BJS', maxEntries: 3 });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    const v1 = toImageVersion1(c.card.image);
    const outcomes = await tearEveryWrite(makeBackend, v1, (card) => recordUsageOn(w, card, face.tid, 'ENTRY'));
    expect(outcomes.before + outcomes.after).toBeGreaterThanOrEqual(3);
    const after = await attempt(makeBackend, v1, async () => undefined);
    expect(after.image[8], 'untouched, the version 1 image stays as it was').toBe(1);
  });
});

describe('NVM write failure (disk full, I/O error)', () => {
  it('answers MEMORY_FAILURE, keeps the card consistent, and works again once writes succeed', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'W1' });
    const sealed = w.authority.issue(face, c.credentials).sealed;
    class FailingBackend extends MemoryBackend {
      failing = false;
      override write(region: 'image' | 'journal', offset: number, bytes: Uint8Array): void {
        if (this.failing) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        super.write(region, offset, bytes);
      }
    }
    const backend = new FailingBackend();
    backend.write('image', 0, c.card.image);
    const card = EticketCard.open(backend);
    const issuing = w.issuingTerminal(new CardSession(new EmulatorTransport(card)));
    await issuing.open();
    const before = card.image.slice();
    backend.failing = true;
    const r = await issuing.session.send('LOAD', { data: sealed, accept: [0x6581] });
    expect(r.sw).toBe(0x6581);
    expect(hex(card.image)).toBe(hex(before));
    expect(hex(EticketCard.open(backend).image)).toBe(hex(before));
    backend.failing = false;
    await issuing.load(sealed);
    expect((await issuing.capacity()).tickets).toBe(1);
  });
});
