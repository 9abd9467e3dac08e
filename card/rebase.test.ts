// After each commit the card re-points its decoded state at the image: a patch (LOAD, DELETE, usage updates) moves
// or re-parses what it wrote or moved, a whole-image commit moves every view (state.ts). Whatever the sequence of
// LOAD, usage updates and DELETE, the image must be byte for byte what encodeState makes of the state's values,
// decoding it must give the state, every byte field must be a view of the current image (a view of an older one
// would be stale, and would keep it alive), and the records a command did not touch must not change.

import { afterAll, describe, expect, it } from 'vitest';
import { EticketCard } from './applet.js';
import { MemoryBackend, type NvmBackend } from './nvm.js';
import { decodeState, encodeState, type CardState } from './state.js';
import { hex } from '../sdk/bytes.js';
import { LIMITS } from '../sdk/spec.js';
import { mulberry32 } from '../bench/sim-network.js';
import { today, worldFor } from '../test/helpers/world.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The state as plain data, bytes as hex: two states hold the same values when these are equal. */
function plain(s: CardState): Record<string, unknown> {
  return JSON.parse(JSON.stringify(s, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v)));
}

/** Every byte field of the state, by its path. */
function byteFields(value: unknown, path = 'state', out: [string, Uint8Array][] = []): [string, Uint8Array][] {
  if (value instanceof Uint8Array) out.push([path, value]);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) byteFields(v, `${path}.${k}`, out);
  return out;
}

/** The state and the image agree, and every byte field of the state lies inside the current image. */
function expectStateIsImage(card: EticketCard): void {
  const s = card.persistent;
  const image = card.image;
  // A structured clone has none of the cached encodings (views of the image): this encodes the state's values.
  expect(hex(encodeState(structuredClone(s))), 'the image is encodeState of the state').toBe(hex(image));
  expect(plain(decodeState(image.slice())), 'decoding the image gives the state').toEqual(plain(s));
  for (const [path, v] of byteFields(s)) {
    expect(v.buffer, `${path}: a view of the current image`).toBe(image.buffer);
    const at = v.byteOffset - image.byteOffset;
    expect(at >= 0 && at + v.length <= image.length, `${path}: inside the image`).toBe(true);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'eticket-rebase-'));

describe.each([
  ['memory', () => new MemoryBackend()],
  ['file', () => join(dir, `card-${Math.random().toString(36).slice(2)}.img`)],
] as [string, () => NvmBackend | string][])('the decoded state follows each commit (%s backend)', (_name, backend) => {
  it('through 300 seeded LOADs, usage updates and DELETEs (past the tombstone slots): the state is always the image, its fields views of it', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard({ backend: backend(), capacity: 64 * 1024 });
    const gate = w.checkingTerminal(c.session);
    const random = mulberry32(0x5eed);
    const onCard: string[] = [];
    // Issue times rise, so tickets loaded after a tombstone left the area are above the floor it raised.
    const issuedFrom = w.now - 10_000;
    let n = 0;
    let deletes = 0;
    let before = plain(c.card.persistent);
    for (let step = 0; step < 300; step++) {
      const roll = random();
      let touched: string | undefined;
      let action: string;
      if (onCard.length < 2 || roll < 0.45) {
        const face = w.ticketServer.createTicket({ serviceDate: today(w), train: `R${n}`, origin: 'BJS', destination: 'BJS', maxEntries: 5, issuedAt: issuedFrom + n++ });
        await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
        onCard.push(face.tid);
        action = `LOAD ${face.tid}`;
      } else {
        const tid = onCard[Math.floor(random() * onCard.length)];
        await gate.select();
        const view = await gate.verifyTicket({ tid }, { verificationCode: false });
        if (roll < 0.65) {
          // The first usage of a ticket makes its usage record longer (gate and station): the records after it move.
          await gate.recordUsage(view, 'PUNCH');
          touched = tid;
          action = `PUNCH ${tid}`;
        } else {
          await gate.deleteTicket(view);
          onCard.splice(onCard.indexOf(tid), 1);
          deletes++;
          action = `DELETE ${tid}`;
        }
      }
      expectStateIsImage(c.card);
      // The records the command did not touch are as they were, byte for byte.
      const after = plain(c.card.persistent);
      const byTid = new Map((before.tickets as { tid: string }[]).map((t) => [t.tid, t]));
      for (const t of after.tickets as { tid: string; usage: { counter: number } }[]) {
        const was = byTid.get(t.tid) as typeof t | undefined;
        if (!was) continue;
        if (t.tid === touched) expect(t.usage.counter, `${action}: its counter`).toBe(was.usage.counter + 1);
        else expect(t, `step ${step}, ${action}: ${t.tid} untouched`).toEqual(was);
      }
      before = after;
    }
    expect(c.card.persistent.tickets.map((t) => t.tid)).toEqual(onCard);
    expect(deletes, 'enough DELETEs to fill the tombstone area and shift it').toBeGreaterThan(LIMITS.tombstoneSlots);
    expect(c.card.persistent.tombstones).toHaveLength(LIMITS.tombstoneSlots);
    // And the image opened afresh is the same card.
    expect(hex(EticketCard.open(memoryBackendOf(c.card.image)).image)).toBe(hex(c.card.image));
  });
});

/** A memory backend holding a copy of `image`. */
function memoryBackendOf(image: Uint8Array): MemoryBackend {
  const b = new MemoryBackend();
  b.write('image', 0, image.slice());
  return b;
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));
