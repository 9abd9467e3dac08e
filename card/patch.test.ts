// Commits as patches (state.ts planImagePatch, NvmStore.patch): a LOAD appends its record and rewrites a few bytes of
// the header and the body before the records, a DELETE writes from the deleted record on, and neither rewrites the
// records before the change; the store applies a patch's writes as journalled, grows its copy of the image in a
// buffer with room, and refuses a patch that would leave bytes of the image unwritten.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EticketCard } from './applet.js';
import { FileBackend, MemoryBackend, NvmStore, type NvmBackend, type Region } from './nvm.js';
import { decodeState, encodeState, RECORD_KEYS, sameBesidesTickets, sameBesidesUsage, STATE_KEYS, type CardState, type TicketRecord } from './state.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { hex } from '../sdk/bytes.js';
import { decodeOne } from '../sdk/tlv.js';
import { expectRefused, today, worldFor } from '../test/helpers/world.js';

const dir = mkdtempSync(join(tmpdir(), 'eticket-patch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Where the records (E7) of a version 2 image lie: the start of each, and the end of the last one's checksum. */
function records(image: Uint8Array): { starts: number[]; end: number } {
  const starts: number[] = [];
  for (let o = 45; o < image.length; ) {
    const { tlv, next } = decodeOne(image, o);
    if (tlv.tag === 0xe7) starts.push(o);
    o = next;
  }
  return { starts, end: image.length };
}

type Write = { region: Region; offset: number; length: number };

/** `inner` with every write to it recorded. */
function recording(inner: NvmBackend, writes: Write[]): NvmBackend {
  return {
    description: inner.description,
    read: (r) => inner.read(r),
    write: (r, offset, bytes) => {
      writes.push({ region: r, offset, length: bytes.length });
      inner.write(r, offset, bytes);
    },
    truncate: (r, n) => inner.truncate(r, n),
    remove: (r) => inner.remove(r),
    ...(inner.sync ? { sync: (r: Region) => inner.sync!(r) } : {}),
    ...(inner.map ? { map: (r: Region) => inner.map!(r) } : {}),
  };
}

const BACKENDS = [
  ['memory', () => new MemoryBackend()],
  ['file', () => new FileBackend(join(dir, `card-${Math.random().toString(36).slice(2)}.img`), false)],
] as const;

/** A card holding three tickets, the second one used once, reopened on a recording copy of `make`'s backend. */
async function cardWithThreeTickets(make: () => NvmBackend) {
  const w = worldFor('rsa');
  const c = await w.newCard();
  const faces = ['P1', 'P2', 'P3'].map((train) => w.ticketServer.createTicket({ serviceDate: today(w), train, origin: 'BJS', destination: 'BJS', maxEntries: 5 }));
  for (const f of faces) await c.issuing.load(w.authority.issue(f, c.credentials).sealed);
  const inner = make();
  inner.write('image', 0, c.card.image);
  const writes: Write[] = [];
  const card = EticketCard.open(recording(inner, writes));
  const session = new CardSession(new EmulatorTransport(card));
  const gate = w.checkingTerminal(session);
  await gate.select();
  await gate.recordUsage(await gate.verifyTicket({ tid: faces[1].tid }, { verificationCode: false }), 'PUNCH');
  writes.length = 0;
  return { w, c, faces, card, inner, writes, gate, issuing: w.issuingTerminal(session) };
}

describe.each(BACKENDS)('commits as patches (%s backend)', (_name, make) => {
  it('a LOAD onto a card holding tickets writes none of their bytes, a few dozen bytes before them, and journals little more than its record', async () => {
    const { w, c, card, inner, writes, issuing } = await cardWithThreeTickets(make);
    const before = card.image.slice();
    const { starts } = records(before);
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'P4', origin: 'BJS' });
    await issuing.load(w.authority.issue(face, c.credentials).sealed);
    const added = card.image.length - before.length;
    const image = writes.filter((x) => x.region === 'image');
    for (const x of image) {
      const overlapsRecords = x.offset < before.length && x.offset + x.length > starts[0];
      expect(overlapsRecords, `write at ${x.offset} (${x.length} bytes) touches none of the records on the card`).toBe(false);
    }
    const beforeRecords = image.filter((x) => x.offset < starts[0]).reduce((n, x) => n + x.length, 0);
    expect(beforeRecords, 'bytes written before the records: lengths, checksum, sequence number, card time').toBeLessThan(128);
    expect(image.filter((x) => x.offset >= before.length).map((x) => x.length)).toEqual([added]);
    const journal = writes.filter((x) => x.region === 'journal');
    expect(journal).toHaveLength(1);
    expect(journal[0].length, 'the journal record: the new record and a few dozen bytes more').toBeLessThan(added + 256);
    expect(hex(EticketCard.open(inner).image)).toBe(hex(card.image));
    expect(hex(encodeState(structuredClone(card.persistent)))).toBe(hex(card.image));
  });

  it('a DELETE writes nothing of the records before the deleted one, moves those after it, and the image is what encodeState makes', async () => {
    const { faces, card, inner, writes, gate } = await cardWithThreeTickets(make);
    const before = card.image.slice();
    const { starts } = records(before);
    await gate.select();
    await gate.deleteTicket(await gate.verifyTicket({ tid: faces[1].tid }, { verificationCode: false }));
    const image = writes.filter((x) => x.region === 'image');
    for (const x of image) {
      const overlapsFirst = x.offset < starts[1] && x.offset + x.length > starts[0];
      expect(overlapsFirst, `write at ${x.offset} (${x.length} bytes) touches none of the first record`).toBe(false);
    }
    expect(image.filter((x) => x.offset < starts[0]).reduce((n, x) => n + x.length, 0), 'bytes written before the records: lengths, checksum, a tombstone').toBeLessThan(128);
    // The third record moved to where the second was, and the image is cut after it.
    expect(image.some((x) => x.offset === starts[1] && x.length === before.length - starts[2])).toBe(true);
    expect(card.image.length).toBe(before.length - (starts[2] - starts[1]));
    expect(card.persistent.tickets.map((t) => t.tid)).toEqual([faces[0].tid, faces[2].tid]);
    expect(hex(EticketCard.open(inner).image)).toBe(hex(card.image));
    expect(hex(encodeState(structuredClone(card.persistent)))).toBe(hex(card.image));
  });

  it('a usage update that lengthens its usage record writes from its record on, and the records after it move', async () => {
    const { faces, card, inner, writes, gate } = await cardWithThreeTickets(make);
    const before = card.image.slice();
    const { starts } = records(before);
    await gate.select();
    // The first ticket's first usage adds the gate and station to its usage record.
    await gate.recordUsage(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }), 'PUNCH');
    expect(card.image.length).toBeGreaterThan(before.length);
    const image = writes.filter((x) => x.region === 'image');
    const head = image.filter((x) => x.offset < starts[0]);
    expect(head.every((x) => x.offset >= 9 && x.offset + x.length <= 45), 'before the records: the header only (length, checksum)').toBe(true);
    expect(card.persistent.tickets.map((t) => t.usage.counter)).toEqual([1, 1, 0]);
    expect(hex(EticketCard.open(inner).image)).toBe(hex(card.image));
    expect(hex(encodeState(structuredClone(card.persistent)))).toBe(hex(card.image));
  });
});

describe('a patch the card cannot hold', () => {
  it('a usage update that would lengthen its record past the capacity is refused (NOT_ENOUGH_MEMORY), the card and its state as they were', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const faces = ['C1', 'C2'].map((train) => w.ticketServer.createTicket({ serviceDate: today(w), train, origin: 'BJS', destination: 'BJS', maxEntries: 5 }));
    for (const f of faces) await c.issuing.load(w.authority.issue(f, c.credentials).sealed);
    // How much the first ticket's first usage adds (on a fork), then the same card one byte short of holding it.
    const fork = c.card.fork();
    const onFork = w.checkingTerminal(new CardSession(new EmulatorTransport(fork)));
    await onFork.select();
    await onFork.recordUsage(await onFork.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }), 'PUNCH');
    expect(fork.image.length).toBeGreaterThan(c.card.image.length);
    const backend = new MemoryBackend();
    backend.write('image', 0, encodeState({ ...decodeState(c.card.image.slice()), capacity: fork.image.length - 1 }));
    const card = EticketCard.open(backend);
    const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(card)));
    await gate.select();
    const view = await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false });
    await expectRefused(card, gate.recordUsage(view, 'PUNCH'), 'NOT_ENOUGH_MEMORY');
    const s = card.persistent;
    expect(hex(encodeState(structuredClone(s)))).toBe(hex(card.image));
    for (const t of s.tickets) for (const v of [t.face, t.tfv]) expect(v.buffer, `${t.tid}: still a view of the image`).toBe(card.image.buffer);
    // Room made by a DELETE, the same usage update fits.
    await gate.select();
    await gate.deleteTicket(await gate.verifyTicket({ tid: faces[1].tid }, { verificationCode: false }));
    await gate.select();
    const receipt = await gate.recordUsage(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }), 'PUNCH');
    expect(receipt.usage?.counter).toBe(1);
    expect(hex(encodeState(structuredClone(card.persistent)))).toBe(hex(card.image));
  });
});

describe('NvmStore.patch', () => {
  /** A memory backend holding bytes 0, 1, 2 ... `n - 1`. */
  function counting(n: number): MemoryBackend {
    const b = new MemoryBackend();
    b.write('image', 0, Uint8Array.from({ length: n }, (_, i) => i));
    return b;
  }

  it('writes the bytes it journalled: a write whose bytes are a view of the image an earlier write of the patch changed still writes what they were', () => {
    const backend = counting(20);
    const store = new NvmStore(backend);
    const image = store.current;
    // A swap of two halves on a backend whose image is the store's (map()): the second write's bytes are the first's target.
    store.patch([
      { offset: 0, bytes: image.subarray(10, 20) },
      { offset: 10, bytes: image.subarray(0, 10) },
    ]);
    const swapped = [...Array.from({ length: 10 }, (_, i) => i + 10), ...Array.from({ length: 10 }, (_, i) => i)];
    expect(Array.from(store.current)).toEqual(swapped);
    expect(Array.from(new NvmStore(backend).current)).toEqual(swapped);
  });

  it('grows and cuts the image: appends land in the room of its buffer (views of the image stay views of it), a cut keeps the buffer', () => {
    const path = join(dir, 'grow.img');
    FileBackend.createImage(path, Uint8Array.from({ length: 100 }, (_, i) => i));
    const backend = new FileBackend(path, false);
    const store = new NvmStore(backend);
    store.patch([{ offset: 100, bytes: new Uint8Array(50).fill(1) }], 150);
    const first = store.current;
    const view = first.subarray(10, 20);
    store.patch([{ offset: 150, bytes: new Uint8Array(20).fill(2) }], 170);
    expect(store.current.buffer, 'the second append fits the room the first made').toBe(first.buffer);
    expect(Array.from(view)).toEqual(Array.from({ length: 10 }, (_, i) => i + 10));
    store.patch([{ offset: 0, bytes: new Uint8Array([9]) }], 120);
    expect(store.current.buffer).toBe(first.buffer);
    expect(store.current.length).toBe(120);
    const expected = new Uint8Array(120);
    expected.set(Uint8Array.from({ length: 100 }, (_, i) => i));
    expected.fill(1, 100, 120);
    expected[0] = 9;
    expect(hex(store.current)).toBe(hex(expected));
    backend.close();
    expect(hex(new NvmStore(new FileBackend(path, false)).current), 'the file holds the same').toBe(hex(expected));
  });

  it('refuses, before writing anything, a patch that writes past its length, leaves a gap past the end, or does not fill what it grows to', () => {
    const backend = counting(100);
    const writes: Write[] = [];
    const store = new NvmStore(recording(backend, writes));
    expect(() => store.patch([{ offset: 95, bytes: new Uint8Array(10) }])).toThrow(/^patch past the end of the image$/);
    expect(() => store.patch([{ offset: 95, bytes: new Uint8Array(10) }], 104)).toThrow(RangeError);
    expect(() => store.patch([{ offset: 101, bytes: new Uint8Array(10) }], 111)).toThrow(/^patch leaves a gap past the end of the image$/);
    expect(() => store.patch([{ offset: 100, bytes: new Uint8Array(10) }], 120)).toThrow(/^patch does not fill the image it grows to$/);
    expect(writes, 'nothing journalled, nothing written').toEqual([]);
    expect(Array.from(store.current)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('a file-backed card after patches', () => {
  it('its LOADs and DELETE, replayed from the journal onto the image as last checkpointed, give the same image', async () => {
    const w = worldFor('rsa');
    const path = join(dir, 'card.img');
    const c = await w.newCard({ backend: path });
    c.card.checkpoint();
    const checkpointed = readFileSync(path);
    const faces = ['Q1', 'Q2', 'Q3'].map((train) => w.ticketServer.createTicket({ serviceDate: today(w), train, origin: 'BJS' }));
    for (const f of faces) await c.issuing.load(w.authority.issue(f, c.credentials).sealed);
    const gate = w.checkingTerminal(c.session);
    await gate.select();
    await gate.deleteTicket(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }));
    // The image's writes lost (they are not synced before a checkpoint): the file as checkpointed, and the journal.
    writeFileSync(path, checkpointed);
    const reopened = EticketCard.open(new FileBackend(path, false));
    expect(hex(reopened.image)).toBe(hex(c.card.image));
    expect(decodeState(reopened.image.slice()).tickets.map((t) => t.tid)).toEqual([faces[1].tid, faces[2].tid]);
  });
});

describe('planUsagePatch\'s comparisons, written out, against the key lists', () => {
  const state = (): CardState => Object.fromEntries(STATE_KEYS.map((k) => [k, { k }])) as unknown as CardState;
  const record = (): TicketRecord => Object.fromEntries(RECORD_KEYS.map((k) => [k, { k }])) as unknown as TicketRecord;

  it('a state differs for every key of STATE_KEYS but tickets, and only for those', () => {
    const a = state();
    expect(sameBesidesTickets(a, { ...a })).toBe(true);
    for (const k of STATE_KEYS) expect([k, sameBesidesTickets(a, { ...a, [k]: { other: k } })]).toEqual([k, k === 'tickets']);
  });

  it('a record differs for every key of RECORD_KEYS but usage, and only for those', () => {
    const a = record();
    expect(sameBesidesUsage(a, { ...a })).toBe(true);
    for (const k of RECORD_KEYS) expect([k, sameBesidesUsage(a, { ...a, [k]: { other: k } })]).toEqual([k, k === 'usage']);
  });
});
