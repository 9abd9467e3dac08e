// CheckingTerminal.passGate choosing the ticket that can pass (issue 13) beside the offline gate's screen (issue 14):
// a second ticket for the same train passes once the first is used, and a screened card (denylisted) is refused
// on its first ticket without any other ticket being looked at or written.

import { beforeAll, describe, expect, it } from 'vitest';
import type { World, WorldCard } from '../testing/world.js';
import { reject } from './gate.js';
import { today, worldFor } from '../test/helpers/world.js';

describe('passGate: the ticket that can pass, and the screen', () => {
  let w: World;
  let c: WorldCard;
  const tids: string[] = [];

  beforeAll(async () => {
    w = worldFor('rsa');
    c = await w.newCard();
    for (const seat of ['1A', '1B']) {
      const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'G1', origin: 'BJS', destination: 'SHH', seat });
      await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
      tids.push(face.tid);
    }
  });

  it('first tap passes on one ticket; a screened (denylisted) card is then refused on the ticket it showed, nothing written; unscreened, the other ticket passes', async () => {
    const gate = w.checkingTerminal(c.session, { station: 'BJS' });
    const first = await gate.passGate('entry', { train: 'G1' });
    expect(first.decision.pass).toBe(true);
    const used = first.ticket!.face.tid;
    expect(tids).toContain(used);

    let screened = 0;
    const refused = await gate.passGate('entry', {
      train: 'G1',
      screen: () => {
        screened++;
        return reject('denylisted');
      },
    });
    expect(refused.decision).toMatchObject({ pass: false, reason: 'denylisted' });
    expect(refused.ticket?.face.tid, 'refused on the ticket the card showed').toBe(used);
    expect(refused.receipt, 'nothing written to the card').toBeUndefined();
    expect(screened, 'no other ticket was looked at').toBe(1);

    // The other ticket is untouched by the refused tap: without the screen it is the one that passes.
    const second = await gate.passGate('entry', { train: 'G1', screen: () => undefined });
    expect(second.decision.pass).toBe(true);
    expect(second.ticket!.face.tid).toBe(tids.find((t) => t !== used));
    expect(second.receipt).toBeDefined();

    // Both used: the card has no ticket left that can enter.
    const third = await gate.passGate('entry', { train: 'G1' });
    expect(third.decision).toMatchObject({ pass: false, reason: 'already_inside' });
  });
});
