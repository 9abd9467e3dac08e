// The card's usage state machine as a table (card/commands/usage-state.ts): every event in every state, the
// one-byte caps on entries and temporary exits, multi-entry tickets; and the gate's decision agreeing with it.

import { describe, expect, it } from 'vitest';
import { decide } from '../../host/gate.js';
import { USAGE_EVENT, USAGE_STATE } from '../../sdk/spec.js';
import { newUsageRecord, USAGE_FLAG, type TicketFace, type UsageRecord } from '../../sdk/ticket.js';
import { MAX_COUNT, nextUsage } from './usage-state.js';

const { NEW, INSIDE, TEMPORARY_EXIT, EXITED } = USAGE_STATE;
const { ENTRY, TEMPORARY_EXIT: TEMP_EXIT, EXIT, PUNCH, PAPER_PRINTED, DELETED } = USAGE_EVENT;
const AT = { gate: 'G7', station: 'BJS', time: 1_800_000_000 };
const record = (state: number, entries = 0, temporaryExits = 0, flags = 0): UsageRecord => ({ ...newUsageRecord(), state, entries, temporaryExits, flags, counter: 41 });

type Expected = { state: number; entries: number; temporaryExits: number; flags: number } | 'refused';
type Row = [what: string, before: UsageRecord, maxEntries: number, event: number, after: Expected];

const ROWS: Row[] = [
  // NEW
  ['NEW + ENTRY: inside, first entry', record(NEW), 1, ENTRY, { state: INSIDE, entries: 1, temporaryExits: 0, flags: 0 }],
  ['NEW + TEMPORARY_EXIT: not inside', record(NEW), 1, TEMP_EXIT, 'refused'],
  ['NEW + EXIT: not inside', record(NEW), 1, EXIT, 'refused'],
  ['NEW + PUNCH', record(NEW), 1, PUNCH, { state: NEW, entries: 0, temporaryExits: 0, flags: USAGE_FLAG.PUNCHED }],
  ['NEW + PAPER_PRINTED', record(NEW), 1, PAPER_PRINTED, { state: NEW, entries: 0, temporaryExits: 0, flags: USAGE_FLAG.PAPER_PRINTED }],
  ['NEW + ENTRY on a face allowing no entry', record(NEW), 0, ENTRY, 'refused'],
  // INSIDE
  ['INSIDE + ENTRY: already inside', record(INSIDE, 1), 1, ENTRY, 'refused'],
  ['INSIDE + TEMPORARY_EXIT: counted', record(INSIDE, 1), 1, TEMP_EXIT, { state: TEMPORARY_EXIT, entries: 1, temporaryExits: 1, flags: 0 }],
  ['INSIDE + EXIT: exited', record(INSIDE, 1), 1, EXIT, { state: EXITED, entries: 1, temporaryExits: 0, flags: 0 }],
  ['INSIDE + PUNCH keeps the paper flag', record(INSIDE, 1, 0, USAGE_FLAG.PAPER_PRINTED), 1, PUNCH, { state: INSIDE, entries: 1, temporaryExits: 0, flags: USAGE_FLAG.PAPER_PRINTED | USAGE_FLAG.PUNCHED }],
  ['INSIDE + PAPER_PRINTED', record(INSIDE, 1), 1, PAPER_PRINTED, { state: INSIDE, entries: 1, temporaryExits: 0, flags: USAGE_FLAG.PAPER_PRINTED }],
  // TEMPORARY_EXIT
  ['TEMPORARY_EXIT + ENTRY: back inside, not a new entry', record(TEMPORARY_EXIT, 1, 1), 1, ENTRY, { state: INSIDE, entries: 1, temporaryExits: 1, flags: 0 }],
  ['TEMPORARY_EXIT + TEMPORARY_EXIT: not inside', record(TEMPORARY_EXIT, 1, 1), 1, TEMP_EXIT, 'refused'],
  ['TEMPORARY_EXIT + EXIT: not inside', record(TEMPORARY_EXIT, 1, 1), 1, EXIT, 'refused'],
  ['TEMPORARY_EXIT + PUNCH', record(TEMPORARY_EXIT, 1, 1), 1, PUNCH, { state: TEMPORARY_EXIT, entries: 1, temporaryExits: 1, flags: USAGE_FLAG.PUNCHED }],
  ['TEMPORARY_EXIT + PAPER_PRINTED', record(TEMPORARY_EXIT, 1, 1), 1, PAPER_PRINTED, { state: TEMPORARY_EXIT, entries: 1, temporaryExits: 1, flags: USAGE_FLAG.PAPER_PRINTED }],
  // EXITED
  ['EXITED + ENTRY, single-entry ticket: used up', record(EXITED, 1), 1, ENTRY, 'refused'],
  ['EXITED + ENTRY, 2 entries allowed, 1 used', record(EXITED, 1), 2, ENTRY, { state: INSIDE, entries: 2, temporaryExits: 0, flags: 0 }],
  ['EXITED + TEMPORARY_EXIT: not inside', record(EXITED, 1), 2, TEMP_EXIT, 'refused'],
  ['EXITED + EXIT: not inside', record(EXITED, 1), 2, EXIT, 'refused'],
  ['EXITED + PUNCH, twice is the same flag', record(EXITED, 1, 0, USAGE_FLAG.PUNCHED), 1, PUNCH, { state: EXITED, entries: 1, temporaryExits: 0, flags: USAGE_FLAG.PUNCHED }],
  ['EXITED + PAPER_PRINTED', record(EXITED, 1), 1, PAPER_PRINTED, { state: EXITED, entries: 1, temporaryExits: 0, flags: USAGE_FLAG.PAPER_PRINTED }],
  // the one-byte caps
  ['ENTRY with 255 allowed, 254 used: the 255th', record(EXITED, MAX_COUNT - 1), 255, ENTRY, { state: INSIDE, entries: MAX_COUNT, temporaryExits: 0, flags: 0 }],
  ['ENTRY with 255 allowed, 255 used', record(EXITED, MAX_COUNT), 255, ENTRY, 'refused'],
  ['TEMPORARY_EXIT, the 255th', record(INSIDE, 1, MAX_COUNT - 1), 1, TEMP_EXIT, { state: TEMPORARY_EXIT, entries: 1, temporaryExits: MAX_COUNT, flags: 0 }],
  ['TEMPORARY_EXIT after 255 of them', record(INSIDE, 1, MAX_COUNT), 1, TEMP_EXIT, 'refused'],
  ['ENTRY back from the 255th temporary exit, at 255 entries', record(TEMPORARY_EXIT, MAX_COUNT, MAX_COUNT), 255, ENTRY, { state: INSIDE, entries: MAX_COUNT, temporaryExits: MAX_COUNT, flags: 0 }],
];

// DELETED exists only in receipts, and an event the spec does not define is no event: refused in every state.
for (const [name, state] of Object.entries(USAGE_STATE)) {
  ROWS.push([`${name} + DELETED (receipts only)`, record(state, 1), 1, DELETED, 'refused']);
  ROWS.push([`${name} + undefined event 09`, record(state, 1), 1, 0x09, 'refused']);
}

describe('nextUsage: every event in every state', () => {
  it.each(ROWS)('%s', (_, before, maxEntries, event, after) => {
    const next = nextUsage(before, maxEntries, { event, ...AT });
    if (after === 'refused') {
      expect(next).toBeUndefined();
      return;
    }
    // Every accepted event moves the counter and records where and when, whatever else it changes.
    expect(next).toEqual({ ...before, ...after, lastGate: AT.gate, lastStation: AT.station, lastTime: AT.time, counter: before.counter + 1 });
  });

  it('the table covers every (state, event) pair of the spec', () => {
    const covered = new Set(ROWS.map(([, u, , e]) => `${u.state}/${e}`));
    for (const s of Object.values(USAGE_STATE)) for (const e of Object.values(USAGE_EVENT)) expect(covered, `state ${s} event ${e}`).toContain(`${s}/${e}`);
  });

  it('never changes the record it was given', () => {
    const before = record(INSIDE, 1);
    const copy = structuredClone(before);
    nextUsage(before, 1, { event: EXIT, ...AT });
    expect(before).toEqual(copy);
  });
});

describe('the gate decides as the card will (host/gate.ts against the state machine)', () => {
  const face: TicketFace = { version: 1, operator: 'CR', tid: 'T', serviceDate: 20270115, validFrom: 0, validUntil: 2 ** 32 - 1, issuedAt: 0 };
  const states = Object.values(USAGE_STATE);
  it('for every state, entry count and maxEntries 1..255, an entry or exit passes exactly when the card accepts it', () => {
    for (const state of states) {
      for (const maxEntries of [1, 2, 3, 254, 255]) {
        for (const entries of state === NEW ? [0] : [1, 2, maxEntries - 1, maxEntries].filter((n) => n >= 1 && n <= maxEntries)) {
          const u = record(state, entries, 1);
          for (const [direction, event] of [['entry', ENTRY], ['exit', EXIT]] as const) {
            const gate = decide({ ...face, maxEntries }, u, { direction, station: 'BJS', now: 1 }).pass;
            const card = nextUsage(u, maxEntries, { event, ...AT }) !== undefined;
            expect(gate, `state ${state}, ${entries}/${maxEntries} entries, ${direction}`).toBe(card);
          }
        }
      }
    }
  });
});
