// Property: any byte string sent to the card yields a status word that apdu-spec lists for that
// command (or for all commands), never a throw, and a locked card's NVM image is left untouched.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EticketCard } from './applet.js';
import { EticketCard as Card } from './applet.js';
import { hex } from '../sdk/bytes.js';
import { AID, commandForIns, protocol, swAllowedFor } from '../sdk/spec.js';
import { worldFor, today } from '../test/helpers/world.js';

function sw(r: Uint8Array): number {
  return (r[r.length - 2] << 8) | r[r.length - 1];
}

const KNOWN_INS = protocol.commands.map((c) => parseInt(c.ins, 16));
const KNOWN_P2 = [...new Set(protocol.commands.flatMap((c) => c.p2.map((p) => parseInt(p, 16))))];

/** Mostly well-formed headers of real commands with random bodies, plus pure noise. */
const apduArb = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 600 }),
  fc
    .record({
      cla: fc.constantFrom(0x00, 0x80, 0x90, 0x10, 0x84, 0x01, 0xff),
      ins: fc.oneof(fc.constantFrom(...KNOWN_INS), fc.integer({ min: 0, max: 255 })),
      p1: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4), fc.integer({ min: 0, max: 255 })),
      p2: fc.oneof(fc.constantFrom(...KNOWN_P2), fc.integer({ min: 0, max: 255 })),
      body: fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((d) => (d.length ? new Uint8Array([d.length & 0xff, ...d]) : d)),
        fc.uint8Array({ maxLength: 700 }),
        fc.uint8Array({ maxLength: 300 }).map((d) => new Uint8Array([0, d.length >> 8, d.length & 0xff, ...d, 0, 0])),
      ),
    })
    .map(({ cla, ins, p1, p2, body }) => new Uint8Array([cla, ins, p1, p2, ...body])),
);

function check(card: EticketCard, apdu: Uint8Array, seen: Set<string>): void {
  let r: Uint8Array;
  try {
    r = card.transmit(apdu);
  } catch (e) {
    throw new Error(`card threw on ${hex(apdu)}: ${(e as Error).message}`);
  }
  expect(r.length).toBeGreaterThanOrEqual(2);
  const def = apdu.length >= 2 ? commandForIns(apdu[0] & 0xef, apdu[1]) : undefined;
  const s = sw(r);
  expect(swAllowedFor(def, s), `${hex(apdu.subarray(0, 4))} answered ${s.toString(16)} not listed for ${def?.name}`).toBe(true);
  // 6F00 is how the card reports an internal exception: listed, but never expected.
  expect(s, `internal error on ${hex(apdu)}`).not.toBe(0x6f00);
  seen.add(`${def?.name ?? '-'}:${s.toString(16)}`);
}

describe('fuzz: any bytes in, a listed status word out', () => {
  let locked: EticketCard;
  beforeAll(async () => {
    const w = worldFor('rsa');
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'F1' });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    locked = c.card;
  });

  it('a locked card with tickets answers every byte string with a spec status word and keeps its image', () => {
    const seen = new Set<string>();
    const select = new Uint8Array([0, 0xa4, 4, 0, AID.length, ...AID]);
    fc.assert(
      fc.property(apduArb, fc.boolean(), (apdu, selectFirst) => {
        if (selectFirst) locked.transmit(select);
        const before = locked.image.slice();
        check(locked, apdu, seen);
        expect(Buffer.from(locked.image).equals(Buffer.from(before))).toBe(true);
      }),
      { numRuns: 3000 },
    );
    expect(seen.size).toBeGreaterThan(10);
  });

  it('a blank card in personalisation answers every byte string with a spec status word', () => {
    const seen = new Set<string>();
    const blank = Card.inMemory();
    const select = new Uint8Array([0, 0xa4, 4, 0, AID.length, ...AID]);
    fc.assert(
      fc.property(apduArb, (apdu) => {
        blank.transmit(select);
        // GENERATE KEY would spend 150 ms per run on RSA key generation; its answers are covered elsewhere.
        if (apdu.length > 1 && apdu[1] === 0x46) return;
        check(blank, apdu, seen);
      }),
      { numRuns: 2000 },
    );
  });
});
