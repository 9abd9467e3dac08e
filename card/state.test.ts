// Card image format version 2 (apdu-spec README §6): record checksums that catch a changed record, the header's
// checksum that catches the rest, version 1 images still read and migrated by their first commit, and the
// in-place usage update writing only the usage record and its record's checksum.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DECODED_CARDS, EticketCard } from './applet.js';
import { MemoryBackend, NvmCorruptError, type NvmBackend } from './nvm.js';
import { decodeState, encodeState } from './state.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { hex } from '../sdk/bytes.js';
import { decodeOne } from '../sdk/tlv.js';
import { today, worldFor } from '../test/helpers/world.js';
import { toImageVersion1 } from '../test/helpers/image-v1.js';

/** A personalised card holding two multi-entry tickets, one of them entered once. */
async function cardWithTickets() {
  const w = worldFor('rsa');
  const c = await w.newCard();
  const faces = ['F1', 'F2'].map((train) => w.ticketServer.createTicket({ serviceDate: today(w), train, origin: 'BJS', destination: 'BJS', maxEntries: 5 }));
  for (const f of faces) await c.issuing.load(w.authority.issue(f, c.credentials).sealed);
  const gate = w.checkingTerminal(c.session);
  await gate.select();
  await gate.recordUsage(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }), 'ENTRY');
  return { w, c, faces };
}

/** Top-level TLVs of an image body: tag and where they lie. */
function layout(image: Uint8Array): { tag: number; start: number; end: number; valueStart: number }[] {
  const out = [];
  for (let o = 45; o < image.length; ) {
    const { tlv, next } = decodeOne(image, o);
    out.push({ tag: tlv.tag, start: o, end: next, valueStart: next - tlv.value.length });
    o = next;
  }
  return out;
}

describe('card image format version 2', () => {
  it('writes version 2: records last, each followed by its 32-byte checksum', async () => {
    const { c } = await cardWithTickets();
    const image = c.card.image;
    expect(image[8]).toBe(2);
    const items = layout(image);
    const first = items.findIndex((i) => i.tag === 0xe7);
    expect(items.slice(first).map((i) => i.tag.toString(16))).toEqual(['e7', 'de', 'e7', 'de']);
    expect(items.slice(0, first).some((i) => i.tag === 0xde)).toBe(false);
  });

  it('one changed byte in a record is caught by that record\'s checksum; one in the part before the records by the header\'s', async () => {
    const { c } = await cardWithTickets();
    const items = layout(c.card.image);
    const record = items.filter((i) => i.tag === 0xe7)[1];
    const inRecord = c.card.image.slice();
    inRecord[record.end - 3] ^= 0x01;
    expect(() => decodeState(inRecord)).toThrow(NvmCorruptError);
    expect(() => decodeState(inRecord)).toThrow(/ticket record checksum mismatch/);
    const serial = items.find((i) => i.tag === 0xc6)!;
    const inBase = c.card.image.slice();
    inBase[serial.valueStart] ^= 0x01;
    expect(() => decodeState(inBase)).toThrow(/image checksum mismatch/);
    // A record without its checksum (the DE cut out, the length fixed) is refused, not read as version 1.
    const sum = items.filter((i) => i.tag === 0xde)[1];
    const cut = new Uint8Array(c.card.image.length - (sum.end - sum.start));
    cut.set(c.card.image.subarray(0, sum.start));
    new DataView(cut.buffer).setUint32(9, cut.length - 45);
    const firstRecord = items.find((i) => i.tag === 0xe7)!.start;
    cut.set(createHash('sha256').update(cut.subarray(0, 13)).update(cut.subarray(45, firstRecord)).digest(), 13); // a header that agrees
    expect(() => decodeState(cut)).toThrow(/ticket record without its checksum/);
  });

  it('reads a version 1 image as the same state, and its first commit writes version 2 with the command applied', async () => {
    const { w, c, faces } = await cardWithTickets();
    const v2 = c.card.image.slice();
    const v1 = toImageVersion1(v2);
    expect(v1[8]).toBe(1);
    expect(v1.length).toBe(v2.length - 2 * 34);
    // The same state: re-encoding what the version 1 image holds gives the version 2 image byte for byte.
    expect(hex(encodeState(decodeState(v1)))).toBe(hex(v2));
    const backend = new MemoryBackend();
    backend.write('image', 0, v1);
    const old = EticketCard.open(backend);
    const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(old)));
    await gate.select();
    const r = await gate.recordUsage(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }), 'EXIT');
    expect(r.usage?.counter).toBe(2);
    const after = EticketCard.open(backend);
    expect(after.image[8]).toBe(2);
    expect(after.persistent.tickets.map((t) => t.usage.counter)).toEqual([2, 0]);
  });

  it('an in-place usage update writes the usage record and its record checksum only: not the header, not the other record', async () => {
    const { w, c, faces } = await cardWithTickets();
    const writes: { offset: number; length: number }[] = [];
    const inner = new MemoryBackend();
    inner.write('image', 0, c.card.image);
    const backend: NvmBackend = {
      description: 'recording',
      read: (r) => inner.read(r),
      map: (r) => inner.map(r),
      write: (r, offset, bytes) => {
        if (r === 'image') writes.push({ offset, length: bytes.length });
        inner.write(r, offset, bytes);
      },
      truncate: (r, n) => inner.truncate(r, n),
      remove: (r) => inner.remove(r),
    };
    const card = EticketCard.open(backend);
    const items = layout(card.image);
    const [rec0] = items.filter((i) => i.tag === 0xe7);
    const [sum0] = items.filter((i) => i.tag === 0xde);
    const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(card)));
    await gate.select();
    await gate.recordUsage(await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false }), 'EXIT');
    expect(writes.length).toBe(2);
    for (const wr of writes) {
      const inside = (wr.offset >= rec0.start && wr.offset + wr.length <= rec0.end) || (wr.offset === sum0.valueStart && wr.length === 32);
      expect(inside, `write at ${wr.offset} (${wr.length} bytes) lies in the first record or its checksum`).toBe(true);
    }
    expect(decodeState(EticketCard.open(inner).image).tickets[0].usage.counter).toBe(2);
  });
});

describe('decoded states are a cache of the image', () => {
  it('a card whose decoded state was evicted by DECODED_CARDS other cards decodes its image again and taps on, its session kept', async () => {
    const { w, c, faces } = await cardWithTickets();
    const gate = w.checkingTerminal(c.session);
    await gate.select();
    const view = await gate.verifyTicket({ tid: faces[0].tid }, { verificationCode: false });
    const before = c.card.persistent;
    // Between VERIFY and WRITE USAGE, more cards than are kept decode their images: this card's decoded state goes.
    for (let i = 0; i <= DECODED_CARDS; i++) {
      const b = new MemoryBackend();
      b.write('image', 0, c.card.image);
      EticketCard.open(b);
    }
    const receipt = await gate.recordUsage(view, 'EXIT');
    expect(receipt.usage?.counter).toBe(2);
    const after = c.card.persistent;
    expect(after, 'decoded again: a new state object').not.toBe(before);
    expect(after.tickets.map((t) => t.usage.counter)).toEqual([2, 0]);
    expect(hex(encodeState(after))).toBe(hex(c.card.image));
  });
});
