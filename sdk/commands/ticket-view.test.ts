// The fixed-length ticket view B2 (apdu-spec README 3.2): found, not found and void views of one request have one
// length whatever they hold, padding fills every room (the 131 and 260 gaps included), and decoding is strict.

import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex, u16 } from '../bytes.js';
import { LIMITS, T } from '../spec.js';
import { encodeTicketFace, encodeUsageRecord, newUsageRecord } from '../ticket.js';
import { decodeOne, TlvError, tlv } from '../tlv.js';
import { decodeTicketView, encodeTicketView, padding, VIEW_STATUS, viewLengthFor } from './ticket-view.js';

const SERIAL = fromHex('0011223344556677');
const RT = new Uint8Array(16).fill(0x44);
const RC = new Uint8Array(8).fill(0x77);
const face = (over: Record<string, unknown> = {}) =>
  encodeTicketFace({ version: 2, operator: 'CR', tid: 'CR-1', serviceDate: 20260301, validFrom: 1772323200, validUntil: 1772424000, issuedAt: 1767225600, card: SERIAL, ...over });
const ticket = (f = face()) => ({ sequenceNumber: 3, face: f, usage: encodeUsageRecord(newUsageRecord()) });

describe('ticket view B2', () => {
  it('found, not found and void views of one request have the same length; the status tells them apart', () => {
    const length = viewLengthFor({ verificationCode: false });
    expect(length).toBe(LIMITS.viewLength);
    const shown = encodeTicketView({ status: VIEW_STATUS.SHOWN, ticket: ticket(), terminalChallenge: RT, cardChallenge: RC, cardSerial: SERIAL }, length);
    const none = encodeTicketView({ status: VIEW_STATUS.NOT_FOUND, terminalChallenge: RT, cardChallenge: RC, cardSerial: SERIAL }, length);
    const voided = encodeTicketView({ status: VIEW_STATUS.VOID, terminalChallenge: RT, cardChallenge: RC, cardSerial: SERIAL }, length);
    expect([shown.length, none.length, voided.length]).toEqual([length, length, length]);
    expect(decodeTicketView(shown)).toMatchObject({ status: 'shown', sequenceNumber: 3, face: { tid: 'CR-1' } });
    expect(decodeTicketView(none).status).toBe('not_found');
    expect(decodeTicketView(none).face).toBeUndefined();
    expect(decodeTicketView(voided).status).toBe('void');
    expect(hex(decodeTicketView(none).cardSerial)).toBe(hex(SERIAL));
  });

  it('the one-buffer encoder writes the bytes of B2 built from its parts (tlv, concat, padding), at every room size', () => {
    const reference = (v: Parameters<typeof encodeTicketView>[0], length: number) => {
      const opt = (tag: number, value?: Uint8Array) => (value ? tlv(tag, value) : new Uint8Array(0));
      const content = concat(
        tlv(T.VIEW_STATUS, new Uint8Array([v.status])),
        v.ticket ? concat(tlv(T.SEQUENCE_NUMBER, u16(v.ticket.sequenceNumber)), v.ticket.face, v.ticket.usage) : new Uint8Array(0),
        opt(T.TERMINAL_CHALLENGE, v.terminalChallenge),
        opt(T.CARD_CHALLENGE, v.cardChallenge),
        v.verificationCode ?? new Uint8Array(0),
        opt(T.CARD_SIGNING_CERTIFICATE, v.signingCertificate),
        tlv(T.CARD_SERIAL, v.cardSerial),
      );
      return tlv(T.TICKET_VIEW, concat(content, padding(length - 4 - content.length)));
    };
    const parts = [
      { status: VIEW_STATUS.SHOWN, ticket: ticket(), terminalChallenge: RT, cardChallenge: RC, cardSerial: SERIAL },
      { status: VIEW_STATUS.SHOWN, ticket: { ...ticket(), sequenceNumber: 0x1234 }, terminalChallenge: RT, cardChallenge: RC, verificationCode: tlv(T.VERIFICATION_CODE, new Uint8Array(300).fill(9)), signingCertificate: new Uint8Array(200).fill(0x30), cardSerial: SERIAL },
      { status: VIEW_STATUS.NOT_FOUND, cardSerial: SERIAL },
    ];
    let checked = 0;
    for (const v of parts) {
      for (let length = 260; length <= 1400; length++) {
        let expected: Uint8Array | undefined;
        try {
          expected = reference(v, length);
        } catch (e) {
          expect(e).toBeInstanceOf(RangeError);
        }
        if (expected === undefined || expected.length !== length) {
          expect(() => encodeTicketView(v, length)).toThrow(RangeError);
          continue;
        }
        expect(hex(encodeTicketView(v, length))).toBe(hex(expected));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(2000);
  });

  it('the TF_V slot and the card certificate are added to every view of a request that asks for them', () => {
    const cert = new Uint8Array(700).fill(0x30);
    const length = viewLengthFor({ verificationCode: true, signingCertificate: cert });
    expect(length).toBe(LIMITS.viewLength + LIMITS.verificationCodeSlot + tlv(T.CARD_SIGNING_CERTIFICATE, cert).length);
    const tfv = tlv(T.VERIFICATION_CODE, new Uint8Array(300));
    const shown = encodeTicketView({ status: VIEW_STATUS.SHOWN, ticket: ticket(), terminalChallenge: RT, cardChallenge: RC, verificationCode: tfv, signingCertificate: cert, cardSerial: SERIAL }, length);
    const none = encodeTicketView({ status: VIEW_STATUS.NOT_FOUND, terminalChallenge: RT, cardChallenge: RC, signingCertificate: cert, cardSerial: SERIAL }, length);
    expect(shown.length).toBe(none.length);
    expect(decodeTicketView(none).signingCertificate?.length).toBe(700);
  });

  it('padding fills every room from 3 to 4096 bytes exactly, with an empty DF23 first only at 131 and 260', () => {
    for (let room = 3; room <= 4096; room++) {
      const p = padding(room);
      expect(p.length, `room ${room}`).toBe(room);
      const twoObjects = hex(p).startsWith('DF2300') && room > 3;
      expect(twoObjects, `room ${room}`).toBe(room === 131 || room === 260);
    }
    expect(() => padding(2)).toThrow(RangeError);
  });

  it('views whose content leaves exactly 131 or 260 bytes of room still encode to the exact length and decode', () => {
    const parts = { status: VIEW_STATUS.SHOWN, ticket: ticket(face({ passenger: 'P'.repeat(32), origin: 'O'.repeat(16), destination: 'D'.repeat(16) })), terminalChallenge: RT, cardChallenge: RC, cardSerial: SERIAL };
    // The content's size: every field of a long view but its padding.
    const big = encodeTicketView(parts, 1000).subarray(4);
    let content = 0;
    for (let o = 0; o < big.length; ) {
      const { tlv: item, next } = decodeOne(big, o);
      if (item.tag !== T.PADDING) content += next - o;
      o = next;
    }
    for (const gap of [131, 260]) {
      const length = 4 + content + gap;
      const v = encodeTicketView(parts, length);
      expect(v.length).toBe(length);
      expect(hex(v).split('DF23').length - 1, `room ${gap}: an empty DF23, then one more`).toBe(2);
      expect(decodeTicketView(v).face!.passenger).toBe('P'.repeat(32));
    }
  });

  it('refuses malformed views (TlvError): padding not last or not zero, a ticket in a not-found view, fields out of order, trailing bytes', () => {
    const good = encodeTicketView({ status: VIEW_STATUS.NOT_FOUND, terminalChallenge: RT, cardSerial: SERIAL }, LIMITS.viewLength);
    const content = good.subarray(4);
    const rebuild = (c: Uint8Array) => tlv(T.TICKET_VIEW, c);
    const nonZero = content.slice();
    nonZero[nonZero.length - 1] = 1;
    expect(() => decodeTicketView(rebuild(nonZero))).toThrow(TlvError);
    expect(() => decodeTicketView(fromHex(hex(good) + '00'))).toThrow(TlvError);
    const noPadding = rebuild(fromHex(`DF220101 C410${'44'.repeat(16)} C6080011223344556677`.replace(/ /g, '')));
    expect(() => decodeTicketView(noPadding)).toThrow(/DF23/);
    const paddingFirst = rebuild(fromHex(`DF2300 DF220101 C6080011223344556677`.replace(/ /g, '')));
    expect(() => decodeTicketView(paddingFirst)).toThrow(TlvError);
    const swapped = rebuild(fromHex(`C6080011223344556677 DF220101 DF2300`.replace(/ /g, '')));
    expect(() => decodeTicketView(swapped)).toThrow(/order/);
    const ticketInNone = rebuild(fromHex(`DF220101 C8020003 ${hex(face())} ${hex(encodeUsageRecord(newUsageRecord()))} C6080011223344556677 DF2300`.replace(/ /g, '')));
    expect(() => decodeTicketView(ticketInNone)).toThrow(/carries a ticket/);
    const unknownStatus = rebuild(fromHex(`DF220109 C6080011223344556677 DF2300`.replace(/ /g, '')));
    expect(() => decodeTicketView(unknownStatus)).toThrow(/status/);
  });

  it('a view that would not fit its length is a RangeError (the card bounds TF_V at LOAD so it never happens)', () => {
    expect(() => encodeTicketView({ status: VIEW_STATUS.SHOWN, ticket: ticket(), verificationCode: tlv(T.VERIFICATION_CODE, new Uint8Array(400)), cardSerial: SERIAL }, LIMITS.viewLength)).toThrow(RangeError);
  });
});
