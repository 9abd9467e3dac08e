// After each whole-image commit the card moves its decoded state onto the new image (state.ts rebaseState): records
// copied from their cached encodings move by an offset without parsing, a new record is parsed. Whatever the
// sequence of LOAD, usage updates and DELETE, the state must stay exactly what the image holds, and every byte field
// a view of the current image (a view of an older image would be stale, and would keep that image alive).

import { afterAll, describe, expect, it } from 'vitest';
import { EticketCard } from './applet.js';
import { MemoryBackend, type NvmBackend } from './nvm.js';
import { decodeState, encodeState } from './state.js';
import { hex } from '../sdk/bytes.js';
import { mulberry32 } from '../bench/sim-network.js';
import { today, worldFor } from '../test/helpers/world.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The state and the image agree, and every record's fields lie inside the current image. */
function expectStateIsImage(card: EticketCard): void {
  const s = card.persistent;
  const image = card.image;
  expect(hex(encodeState(s))).toBe(hex(image));
  const fresh = decodeState(image.slice());
  expect(s.tickets.map((t) => [t.tid, t.usage.counter, hex(t.face), hex(t.tfv)])).toEqual(fresh.tickets.map((t) => [t.tid, t.usage.counter, hex(t.face), hex(t.tfv)]));
  for (const t of s.tickets) {
    for (const v of [t.face, t.tfv]) {
      expect(v.buffer, `${t.tid}: a view of the current image`).toBe(image.buffer);
      const at = v.byteOffset - image.byteOffset;
      expect(at >= 0 && at + v.length <= image.length, `${t.tid}: inside the image`).toBe(true);
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'eticket-rebase-'));

describe.each([
  ['memory', () => new MemoryBackend()],
  ['file', () => join(dir, `card-${Math.random().toString(36).slice(2)}.img`)],
] as [string, () => NvmBackend | string][])('the decoded state follows each re-encoded image (%s backend)', (_name, backend) => {
  it('through 40 seeded LOADs, entries and DELETEs: the state is always the image, its fields views of it', async () => {
    const w = worldFor('rsa');
    const c = await w.newCard({ backend: backend(), capacity: 64 * 1024 });
    const gate = w.checkingTerminal(c.session);
    const random = mulberry32(0x5eed);
    const onCard: string[] = [];
    let n = 0;
    for (let step = 0; step < 40; step++) {
      const roll = random();
      if (onCard.length < 2 || roll < 0.5) {
        const face = w.ticketServer.createTicket({ serviceDate: today(w), train: `R${n++}`, origin: 'BJS', destination: 'BJS', maxEntries: 5 });
        await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
        onCard.push(face.tid);
      } else {
        const tid = onCard[Math.floor(random() * onCard.length)];
        await gate.select();
        const view = await gate.verifyTicket({ tid }, { verificationCode: false });
        if (roll < 0.8) await gate.recordUsage(view, 'PUNCH');
        else {
          await gate.deleteTicket(view);
          onCard.splice(onCard.indexOf(tid), 1);
        }
      }
      expectStateIsImage(c.card);
    }
    expect(c.card.persistent.tickets.map((t) => t.tid)).toEqual(onCard);
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
