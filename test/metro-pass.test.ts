// The metro pass (apdu-spec README 5): a face with neither origin nor destination, priced per trip, valid at
// any station on any day of its validity window, for as many entries as maxEntries allows; in both gate modes.

import { beforeEach, describe, expect, it } from 'vitest';
import type { GateMode } from '../host/checking.js';
import { PRICING, TICKET_KIND } from '../sdk/ticket.js';
import { toServiceDate } from '../sdk/fields.js';
import type { World, WorldCard } from '../testing/world.js';
import { worldFor } from './helpers/world.js';

const DAY = 86_400;

describe.each(['pki', 'sym'] as GateMode[])('metro pass, gate mode %s', (mode) => {
  let w: World;
  let c: WorldCard;
  let start: number;

  const pass = async (days = 3, over: Record<string, unknown> = {}) => {
    const face = w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(start * 1000)), kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: 255, validFrom: start, validUntil: start + days * DAY - 1, ...over });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    return face;
  };
  const gate = (station: string) => w.checkingTerminal(c.session, { mode, station, gateId: `${station}-G1` });

  beforeEach(async () => {
    w = worldFor('rsa');
    start = Math.floor(Date.UTC(2030, 0, 15) / 1000);
    w.now = start + 8 * 3600;
    c = await w.newCard();
  });

  it('passes any station, any day of its window, for several trips; refused after its window', async () => {
    const face = await pass(3);
    const trips: [string, string, number][] = [
      ['A01', 'B07', start + 8 * 3600],
      ['B07', 'C03', start + 18 * 3600],
      ['C03', 'A01', start + DAY + 9 * 3600], // day 2 of the window: matched by date range, not service date
      ['A01', 'D11', start + 2 * DAY + 23 * 3600],
    ];
    let counter = 0;
    for (const [from, to, at] of trips) {
      w.now = at;
      const inside = await gate(from).passGate('entry');
      expect(inside.decision.pass, `${from} entry: ${inside.decision.message}`).toBe(true);
      expect(inside.ticket?.face.tid).toBe(face.tid);
      expect(inside.receipt?.counter).toBe(++counter);
      w.now = at + 1200;
      const out = await gate(to).passGate('exit');
      expect(out.decision.pass, `${to} exit: ${out.decision.message}`).toBe(true);
      expect(out.receipt?.counter).toBe(++counter);
    }
    // The day after the window: the card offers the pass as the ticket of the day before (valid past midnight in
    // general), and the gate refuses it as expired, writing nothing; a day later the card no longer offers it.
    w.now = start + 3 * DAY + 3600;
    const late = await gate('A01').passGate('entry');
    expect(late.decision).toMatchObject({ pass: false, reason: 'expired' });
    expect(late.receipt).toBeUndefined();
    w.now = start + 4 * DAY + 3600;
    const later = await gate('A01').passGate('entry');
    expect(later.decision).toMatchObject({ pass: false, reason: 'not_found' });
  });

  it('a ticket that names this station and date is preferred to a pass', async () => {
    await pass(3);
    const rail = w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(start * 1000)), train: 'L1', origin: 'A01', destination: 'B07' });
    await c.issuing.load(w.authority.issue(rail, c.credentials).sealed);
    const r = await gate('A01').passGate('entry');
    expect(r.decision.pass).toBe(true);
    expect(r.ticket?.face.tid).toBe(rail.tid);
  });

  it('maxEntries bounds the trips of a pass', async () => {
    await pass(1, { maxEntries: 2 });
    for (let i = 0; i < 2; i++) {
      expect((await gate('A01').passGate('entry')).decision.pass).toBe(true);
      expect((await gate('B07').passGate('exit')).decision.pass).toBe(true);
    }
    expect((await gate('A01').passGate('entry')).decision).toMatchObject({ pass: false, reason: 'already_exited' });
  });
});
