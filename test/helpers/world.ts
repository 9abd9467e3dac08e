// Test fixtures: one back office per suite (key generation is the slow part), fresh cards per test,
// and helpers that assert a refused command left the card's NVM image byte-identical.

import { expect } from 'vitest';
import { World, suiteWorldBuilders } from '../../testing/world.js';
import { CardStatusError, TicketNotFoundError } from '../../sdk/errors.js';
import { encodeCommand } from '../../sdk/apdu.js';
import { AID, SW } from '../../sdk/spec.js';
import type { SuiteName } from '../../sdk/spec.js';
import type { EticketCard } from '../../card/applet.js';
import type { CheckingTerminal, Receipt } from '../../host/checking.js';
import { USAGE_EVENT, USAGE_STATE } from '../../sdk/spec.js';
import { toServiceDate } from '../../sdk/fields.js';

const worlds = new Map<SuiteName, World>();

/** Suites the tests run for: every suite whose back office can be built here. */
export const SUITES = (Object.keys(suiteWorldBuilders) as SuiteName[]).filter((s) => suiteWorldBuilders[s]);

export function worldFor(suite: SuiteName): World {
  let w = worlds.get(suite);
  if (!w) {
    w = World.create(suite);
    worlds.set(suite, w);
  }
  return w;
}

export function today(w: World): number {
  return toServiceDate(new Date(w.now * 1000));
}

/** Expect `promise` to fail with the card status word `sw` (by spec name) and the image unchanged. */
export async function expectRefused(card: EticketCard, promise: Promise<unknown>, swName: keyof typeof SW): Promise<CardStatusError> {
  const before = card.image.slice();
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  expect(error, `expected ${swName}`).toBeInstanceOf(CardStatusError);
  const e = error as CardStatusError;
  expect(e.swName).toBe(swName);
  expect(e.sw).toBe(SW[swName]);
  expect(Buffer.from(card.image).equals(Buffer.from(before)), 'card image must be byte-identical after a refusal').toBe(true);
  return e;
}

/** Raw transmit expecting one SW and an unchanged image. */
export function expectRawRefusal(card: EticketCard, apdu: Uint8Array, sw: number): void {
  const before = card.image.slice();
  const r = card.transmit(apdu);
  const got = (r[r.length - 2] << 8) | r[r.length - 1];
  expect(got.toString(16)).toBe(sw.toString(16));
  expect(Buffer.from(card.image).equals(Buffer.from(before))).toBe(true);
}

/**
 * Walk a ticket through every usage event of the card's state machine (entry, temporary exit,
 * re-entry, punch, paper printed, exit), checking each receipt and the final TF_B; `eachReceipt`
 * adds the gate mode's own checks (signature or MAC).
 */
export async function walkUsageStates(gate: CheckingTerminal, tid: string, eachReceipt: (r: Receipt) => void = () => undefined): Promise<void> {
  const steps: [keyof typeof USAGE_EVENT, number][] = [
    ['ENTRY', USAGE_STATE.INSIDE],
    ['TEMPORARY_EXIT', USAGE_STATE.TEMPORARY_EXIT],
    ['ENTRY', USAGE_STATE.INSIDE],
    ['PUNCH', USAGE_STATE.INSIDE],
    ['PAPER_PRINTED', USAGE_STATE.INSIDE],
    ['EXIT', USAGE_STATE.EXITED],
  ];
  let counter = 0;
  for (const [event, state] of steps) {
    const view = await gate.verifyTicket({ tid }, { verificationCode: false });
    const receipt = await gate.recordUsage(view, event);
    expect(receipt.event).toBe(USAGE_EVENT[event]);
    expect(receipt.counter).toBe(++counter);
    expect(receipt.usage?.state).toBe(state);
    eachReceipt(receipt);
  }
  const final = await gate.verifyTicket({ tid });
  expect(final.usage).toMatchObject({ entries: 1, temporaryExits: 1, state: USAGE_STATE.EXITED, flags: 3, lastGate: 'G01', lastStation: 'BJS', counter: 6 });
}

/**
 * SELECT, then EXTERNAL AUTHENTICATE with the world's authority over raw APDUs: afterwards the card answers GET
 * DATA of its identifying objects (until the next SELECT or reset).
 */
export function authenticateRaw(card: EticketCard, w: World): void {
  const select = new Uint8Array([0x00, 0xa4, 0x04, 0x0c, AID.length, ...AID]);
  card.transmit(select);
  const r = card.transmit(new Uint8Array([0x00, 0x84, 0x00, 0x00, 0x08]));
  expect((r[8] << 8) | r[9]).toBe(SW.SUCCESS);
  const data = w.authority.authorizeIssuer(r.subarray(0, 8));
  const ea = card.transmit(encodeCommand({ cla: 0x80, ins: 0x82, p1: 0, p2: 0, data }));
  expect((ea[0] << 8) | ea[1], 'EXTERNAL AUTHENTICATE').toBe(SW.SUCCESS);
}

/** Expect `promise` to fail because the card's view shows no such ticket (`not_found`) or a void one, image unchanged. */
export async function expectAbsent(card: EticketCard, promise: Promise<unknown>, status: 'not_found' | 'void'): Promise<void> {
  const before = card.image.slice();
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected the view to say ${status}`).toBeInstanceOf(TicketNotFoundError);
  expect((error as TicketNotFoundError).status).toBe(status);
  expect(Buffer.from(card.image).equals(Buffer.from(before)), 'card image must be byte-identical').toBe(true);
}
