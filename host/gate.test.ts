// The gate decision as tables (host/gate.ts): every reject reason, each boundary of the validity window,
// both directions in every usage state, multi-entry tickets; and what each kind of failed tap becomes.

import { describe, expect, it } from 'vitest';
import { ApduFormatError } from '../sdk/apdu.js';
import { CardMisbehavedError, CardRemovedError, CardStatusError, CryptoError, InvalidInputError, RelayError, TicketNotFoundError, WrongCardError } from '../sdk/errors.js';
import { describeSw, SW, USAGE_STATE } from '../sdk/spec.js';
import { newUsageRecord, type TicketFace, type UsageRecord } from '../sdk/ticket.js';
import { TlvError } from '../sdk/tlv.js';
import { decide, REJECT_MESSAGES, rejectFor, type Direction, type GateDecision, type RejectReason } from './gate.js';

const FROM = 1_800_000_000;
const UNTIL = FROM + 86_400;
const FACE: TicketFace = { version: 1, operator: 'CR', tid: 'T', serviceDate: 20270115, origin: 'BJS', destination: 'SHH', validFrom: FROM, validUntil: UNTIL, issuedAt: FROM - 10 };
const { NEW, INSIDE, TEMPORARY_EXIT, EXITED } = USAGE_STATE;
const usage = (state: number, entries = 0): UsageRecord => ({ ...newUsageRecord(), state, entries });

type Row = [what: string, face: Partial<TicketFace>, u: UsageRecord, direction: Direction, station: string, now: number, expected: RejectReason | 'pass'];

const ROWS: Row[] = [
  ['a new ticket enters at its origin', {}, usage(NEW), 'entry', 'BJS', FROM, 'pass'],
  ['one second before validFrom', {}, usage(NEW), 'entry', 'BJS', FROM - 1, 'not_yet_valid'],
  ['at validUntil', {}, usage(NEW), 'entry', 'BJS', UNTIL, 'pass'],
  ['one second after validUntil', {}, usage(NEW), 'entry', 'BJS', UNTIL + 1, 'expired'],
  ['validity is checked before the station (expired at the wrong station)', {}, usage(NEW), 'entry', 'XXX', UNTIL + 1, 'expired'],
  ['entry at another station than the origin', {}, usage(NEW), 'entry', 'SHH', FROM, 'wrong_station'],
  ['entry anywhere when the face names no origin', { origin: undefined }, usage(NEW), 'entry', 'ANY', FROM, 'pass'],
  ['entry while inside', {}, usage(INSIDE, 1), 'entry', 'BJS', FROM, 'already_inside'],
  ['re-entry after a temporary exit', {}, { ...usage(TEMPORARY_EXIT, 1), temporaryExits: 1 }, 'entry', 'BJS', FROM, 'pass'],
  ['entry after the final exit of a single-entry ticket', {}, usage(EXITED, 1), 'entry', 'BJS', FROM, 'already_exited'],
  ['multi-entry: a second entry after an exit (2 of 3)', { maxEntries: 3 }, usage(EXITED, 1), 'entry', 'BJS', FROM, 'pass'],
  ['multi-entry: the third entry (3 of 3)', { maxEntries: 3 }, usage(EXITED, 2), 'entry', 'BJS', FROM, 'pass'],
  ['multi-entry: a fourth entry (3 allowed)', { maxEntries: 3 }, usage(EXITED, 3), 'entry', 'BJS', FROM, 'already_exited'],
  ['multi-entry: still inside', { maxEntries: 3 }, usage(INSIDE, 2), 'entry', 'BJS', FROM, 'already_inside'],
  ['multi-entry: 255 allowed, 254 used', { maxEntries: 255 }, usage(EXITED, 254), 'entry', 'BJS', FROM, 'pass'],
  ['multi-entry: 255 allowed, 255 used', { maxEntries: 255 }, usage(EXITED, 255), 'entry', 'BJS', FROM, 'already_exited'],
  ['exit at the destination', {}, usage(INSIDE, 1), 'exit', 'SHH', FROM, 'pass'],
  ['exit at another station than the destination', {}, usage(INSIDE, 1), 'exit', 'BJS', FROM, 'wrong_station'],
  ['exit anywhere when the face names no destination', { destination: undefined }, usage(INSIDE, 1), 'exit', 'ANY', FROM, 'pass'],
  ['exit without an entry', {}, usage(NEW), 'exit', 'SHH', FROM, 'not_entered'],
  ['exit during a temporary exit', {}, usage(TEMPORARY_EXIT, 1), 'exit', 'SHH', FROM, 'not_entered'],
  ['exit after the final exit', {}, usage(EXITED, 1), 'exit', 'SHH', FROM, 'already_exited'],
  ['multi-entry: exit after the final exit, entries left', { maxEntries: 3 }, usage(EXITED, 1), 'exit', 'SHH', FROM, 'already_exited'],
  ['exit one second after validUntil', {}, usage(INSIDE, 1), 'exit', 'SHH', UNTIL + 1, 'expired'],
];

describe('decide: ticket, usage, place and time', () => {
  it.each(ROWS)('%s', (_, over, u, direction, station, now, expected) => {
    const d = decide({ ...FACE, ...over }, u, { direction, station, now });
    if (expected === 'pass') expect(d).toMatchObject({ pass: true });
    else expect(d).toEqual({ pass: false, reason: expected, message: expect.stringContaining(REJECT_MESSAGES[expected]) });
  });

  it('greets as the state says: welcome, welcome back, goodbye', () => {
    expect(decide(FACE, usage(NEW), { direction: 'entry', station: 'BJS', now: FROM }).message).toBe('welcome');
    expect(decide(FACE, usage(TEMPORARY_EXIT, 1), { direction: 'entry', station: 'BJS', now: FROM }).message).toBe('welcome back');
    expect(decide(FACE, usage(INSIDE, 1), { direction: 'exit', station: 'SHH', now: FROM }).message).toBe('goodbye');
  });
});

const status = (name: keyof typeof SW) => new CardStatusError('VERIFY', SW[name], name, describeSw(SW[name]).description);

const FAILURES: [what: string, error: unknown, reason: RejectReason, message: RegExp][] = [
  ['the view says the card has no such ticket (DF22 01)', new TicketNotFoundError('VERIFY', 'not_found'), 'not_found', /^no ticket for this service/],
  ['the view says the ticket was deleted (DF22 02)', new TicketNotFoundError('VERIFY', 'void'), 'void', /^ticket was cancelled/],
  ['the card refused a command for a view it did not show (9107)', new CardStatusError('WRITE USAGE', SW.VIEW_MISMATCH, 'VIEW_MISMATCH', describeSw(SW.VIEW_MISMATCH).description), 'relay', /WRITE USAGE 9107 VIEW_MISMATCH/],
  ['no view pending after the gate\'s own VERIFY, or a receipt for another face', new RelayError('WRITE USAGE 6984: the card has no view pending'), 'relay', /^the card did not vouch for the ticket the gate saw/],
  ['a face bound to another card', new WrongCardError('ticket T was issued to card 01, shown by card 02'), 'wrong_card', /^the ticket was issued to another card/],
  ['any other refusal, e.g. 6982', status('SECURITY_STATUS_NOT_SATISFIED'), 'card_error', /VERIFY 6982 SECURITY_STATUS_NOT_SATISFIED/],
  ['a signature or MAC that does not verify', new CryptoError('receipt MAC does not verify'), 'bad_signature', /receipt MAC does not verify/],
  ['a card that misbehaved (bounds)', new CardMisbehavedError('SELECT', 'getResponseRounds', 'more than 16 GET RESPONSE rounds'), 'card_error', /SELECT: the card misbehaved \(getResponseRounds\)/],
  ['a card pulled mid-tap', new CardRemovedError('card removed', 'reader'), 'card_error', /card removed/],
  ['malformed data a decoder did not wrap', new TlvError('truncated TLV'), 'card_error', /truncated TLV/],
  ['a response APDU without status word', new ApduFormatError('response of 1 bytes has no status word'), 'card_error', /no status word/],
];

describe('rejectFor: what a failed tap becomes', () => {
  it.each(FAILURES)('%s', (_, error, reason, message) => {
    const d: GateDecision = rejectFor(error);
    expect(d).toMatchObject({ pass: false, reason });
    expect(d.message).toMatch(message);
  });

  it('lets programming errors through (they are bugs, not card behaviour)', () => {
    expect(() => rejectFor(new TypeError('x is undefined'))).toThrow(TypeError);
    expect(() => rejectFor(new InvalidInputError('bad config'))).toThrow(InvalidInputError);
  });

  it('between decide and rejectFor, the tables reach every reject reason but the offline gate\'s own', () => {
    // denylisted and journal_full come from what the gate holds, not from the card (host/offline-gate.ts, test/offline.test.ts).
    const reached = new Set<string>([...ROWS.map((r) => r[6]), ...FAILURES.map((f) => f[2]), 'denylisted', 'journal_full']);
    reached.delete('pass');
    expect([...reached].sort()).toEqual(Object.keys(REJECT_MESSAGES).sort());
  });
});
