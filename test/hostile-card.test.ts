// A malicious card against the host, as an adversary would build one (issue 10, item 3): 61XX for ever, with
// or without data, and WRITE USAGE answered 9000 with a malformed receipt. The session stops within its
// bounds with a typed error, timers keep running, and a gate answers REJECT card_error instead of throwing.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import type { GateMode } from '../host/checking.js';
import type { World, WorldCard } from '../testing/world.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { CardMisbehavedError } from '../sdk/errors.js';
import { LIMITS, type SuiteName } from '../sdk/spec.js';
import { GARBAGE_RECEIPTS, HostileIcc, type GarbageReceipt } from './helpers/hostile-card.js';
import { CapturingTransport } from './helpers/capture.js';
import { SUITES, today, worldFor } from './helpers/world.js';

describe('a card that answers 61XX for ever, on the in-process transport', () => {
  const hostile = (withData: boolean) => new HostileIcc(EticketCard.inMemory(), { kind: withData ? 'get-response-forever-with-data' : 'get-response-forever' });

  it('without data: the session stops after the spec\'s GET RESPONSE rounds (CardMisbehavedError getResponseRounds)', async () => {
    const card = hostile(false);
    const e = await new CardSession(new EmulatorTransport(card)).select().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardMisbehavedError);
    expect(e).toMatchObject({ command: 'SELECT', misbehaviour: 'getResponseRounds' });
    expect(card.received).toBe(1 + LIMITS.maxGetResponseRounds);
  });

  it('with data: the session stops at the spec\'s response size (CardMisbehavedError responseBytes)', async () => {
    const card = hostile(true);
    const e = await new CardSession(new EmulatorTransport(card)).select().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardMisbehavedError);
    expect(e).toMatchObject({ command: 'SELECT', misbehaviour: 'responseBytes' });
    expect(card.received).toBe(Math.floor(LIMITS.maxResponseData / 255) + 1);
  });

  it.each([false, true])('with bounds lifted (data: %s), the deadline stops it, and a 50 ms timer set meanwhile fires first', async (withData) => {
    const card = hostile(withData);
    const session = new CardSession(new EmulatorTransport(card), { maxGetResponseRounds: Infinity, maxResponseData: Infinity, commandDeadlineMs: 200 });
    let fired = false;
    setTimeout(() => (fired = true), 50);
    let firedWhenStopped: boolean | undefined;
    const e = await session.select().catch((x: unknown) => {
      firedWhenStopped = fired;
      return x;
    });
    expect(e).toBeInstanceOf(CardMisbehavedError);
    expect(e).toMatchObject({ command: 'SELECT', misbehaviour: 'deadline' });
    expect(firedWhenStopped).toBe(true);
    expect(card.received).toBeGreaterThan(LIMITS.maxGetResponseRounds);
  });
});

describe.each(SUITES)('%s suite: a gate meets a malicious card', (suite: SuiteName) => {
  let w: World;
  beforeAll(() => {
    w = worldFor(suite);
  });

  /** A personalised card holding one ticket valid here today, behind `wrap`. */
  async function cardWithTicket(): Promise<WorldCard> {
    const c = await w.newCard();
    const face = w.ticketServer.createTicket({ serviceDate: today(w), train: 'H1', origin: 'BJS', destination: 'SHH' });
    await c.issuing.load(w.authority.issue(face, c.credentials).sealed);
    return c;
  }

  it.each(['pki', 'sym'] as GateMode[])('61XX for ever: gate mode %s answers REJECT card_error naming the bound', async (mode) => {
    const c = await cardWithTicket();
    const session = new CardSession(new EmulatorTransport(new HostileIcc(c.card, { kind: 'get-response-forever' })));
    const { decision } = await w.checkingTerminal(session, { mode }).passGate('entry');
    expect(decision).toMatchObject({ pass: false, reason: 'card_error' });
    expect(decision.message).toMatch(/SELECT: the card misbehaved \(getResponseRounds\)/);
  });

  const cases = (['pki', 'sym'] as GateMode[]).flatMap((mode) => (Object.keys(GARBAGE_RECEIPTS) as GarbageReceipt[]).map((receipt) => [mode, receipt] as const));
  it.each(cases)('gate mode %s, WRITE USAGE answered 9000 with a malformed receipt (%s): REJECT card_error, no exception', async (mode, receipt) => {
    const c = await cardWithTicket();
    const session = new CardSession(new EmulatorTransport(new HostileIcc(c.card, { kind: 'garbage-receipt', receipt })));
    const { decision, ticket } = await w.checkingTerminal(session, { mode }).passGate('entry');
    expect(decision).toMatchObject({ pass: false, reason: 'card_error' });
    expect(decision.message).toMatch(/WRITE USAGE: the card misbehaved \(answer\)/);
    expect(ticket?.face.train).toBe('H1');
  });

  it.each(['pki', 'sym'] as GateMode[])('gate mode %s: any garbage in place of the VERIFY answer is a REJECT, never an exception', async (mode) => {
    const c = await cardWithTicket();
    const capture = new CapturingTransport(new EmulatorTransport(c.card));
    const gate = w.checkingTerminal(new CardSession(capture), { mode });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(0x9000, 0x6100, 0x6c10, 0x6a83), async (garbage, sw) => {
        capture.tamper = (cmd) => (cmd[1] === 0x54 ? Uint8Array.from([...garbage, sw >> 8, sw & 0xff]) : undefined);
        const { decision } = await gate.passGate('entry');
        expect(decision.pass).toBe(false);
        expect(['card_error', 'bad_signature', 'not_found']).toContain(decision.reason);
      }),
      { numRuns: 40 },
    );
  });
});
