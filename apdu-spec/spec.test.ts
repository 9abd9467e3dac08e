// Keeps apdu-spec, the generated reference and the code in agreement: a drift in any of them fails.

import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderReference } from './generate.js';
import { EticketCard } from '../card/applet.js';
import { HANDLERS } from '../card/commands/table.js';
import { AID, ATR, protocol, SW, describeSw } from '../sdk/spec.js';
import type { TicketFace, UsageRecord } from '../sdk/ticket.js';
import { newUsageRecord } from '../sdk/ticket.js';

describe('apdu-spec', () => {
  it('reference.md is exactly what protocol.json generates (run npm run spec:gen)', () => {
    expect(readFileSync(new URL('./reference.md', import.meta.url), 'utf8')).toBe(renderReference());
  });

  it('every status word a command lists is defined, and every defined one is used', () => {
    const defined = new Set(protocol.statusWords.map((s) => s.sw));
    const used = new Set([...protocol.commonStatusWords, ...protocol.commands.flatMap((c) => c.statusWords)]);
    for (const sw of used) expect(defined, sw).toContain(sw);
    for (const sw of defined) expect(used, `${sw} is defined but no command lists it`).toContain(sw);
  });

  it('every SW constant of the code resolves to its spec name', () => {
    for (const [name, value] of Object.entries(SW)) expect(describeSw(value).name).toBe(name);
  });

  it('the card accepts exactly the P1/P2 values the spec lists for each command', () => {
    const card = EticketCard.inMemory();
    const select = new Uint8Array([0, 0xa4, 4, 0, AID.length, ...AID]);
    for (const c of protocol.commands) {
      if (c.name === 'GET RESPONSE' || c.name === 'SELECT') continue;
      const cla = parseInt(c.cla, 16);
      const ins = parseInt(c.ins, 16);
      for (let p = 0; p < 256; p++) {
        for (const [p1, p2] of [
          [p, parseInt(c.p2[0], 16)],
          [parseInt(c.p1[0], 16), p],
        ]) {
          if (ins === 0x46 && c.p1.includes(hex2(p1)) && c.p2.includes(hex2(p2))) continue; // skip slow key generation
          card.transmit(select);
          const r = card.transmit(new Uint8Array([cla, ins, p1, p2]));
          const sw = (r[r.length - 2] << 8) | r[r.length - 1];
          const listed = c.p1.includes(hex2(p1)) && c.p2.includes(hex2(p2));
          expect(sw === SW.INCORRECT_P1P2, `${c.name} P1=${hex2(p1)} P2=${hex2(p2)}`).toBe(!listed);
        }
      }
    }
  });

  it('every spec command is dispatched by the card (none answers INS_NOT_SUPPORTED)', () => {
    const card = EticketCard.inMemory();
    for (const c of protocol.commands) {
      const r = card.transmit(new Uint8Array([parseInt(c.cla, 16), parseInt(c.ins, 16), parseInt(c.p1[0], 16), parseInt(c.p2[0], 16)]));
      expect((r[r.length - 2] << 8) | r[r.length - 1], c.name).not.toBe(SW.INS_NOT_SUPPORTED);
    }
  });

  it('every spec command is found by its name: sdk/commands/<name>.ts, and a card handler card/commands/<name>.ts in the dispatch table', () => {
    const file = (name: string) => name.toLowerCase().replace(/ /g, '-') + '.ts';
    for (const c of protocol.commands) {
      expect(existsSync(new URL(`../sdk/commands/${file(c.name)}`, import.meta.url)), `sdk/commands/${file(c.name)}`).toBe(true);
      // GET RESPONSE belongs to the ISO framing of card/applet.ts, not to a handler.
      if (c.name === 'GET RESPONSE') continue;
      expect(existsSync(new URL(`../card/commands/${file(c.name)}`, import.meta.url)), `card/commands/${file(c.name)}`).toBe(true);
      expect(HANDLERS[c.name], c.name).toBeTypeOf('function');
    }
    expect(Object.keys(HANDLERS).sort()).toEqual(protocol.commands.map((c) => c.name).filter((n) => n !== 'GET RESPONSE').sort());
  });

  it('the ticket face and usage record types name exactly the spec fields', () => {
    const face: Required<TicketFace> = {
      version: 1, operator: '', tid: '', serviceDate: 0, train: '', origin: '', destination: '', departure: 0, coach: '', seat: '',
      travelClass: '', fare: 0, currency: '', validFrom: 0, validUntil: 0, passenger: '', issuedAt: 0, flags: 0, kind: 0, maxEntries: 0,
      holderRef: new Uint8Array(16), holderBinding: new Uint8Array(32),
    };
    expect(Object.keys(face).sort()).toEqual(protocol.ticketFace.map((f) => f.name).sort());
    const usage: UsageRecord = newUsageRecord();
    expect(Object.keys(usage).sort()).toEqual(protocol.usageRecord.map((f) => f.name).sort());
  });

  it('the ATR checksum is right and the AID is proprietary (F0 prefix)', () => {
    expect(ATR.subarray(1).reduce((a, b) => a ^ b, 0)).toBe(0);
    expect(AID[0]).toBe(0xf0);
  });
});

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
