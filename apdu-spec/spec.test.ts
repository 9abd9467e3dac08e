// Keeps apdu-spec, the generated reference and the code in agreement: a drift in any of them fails.

import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderReference } from './generate.js';
import { EticketCard } from '../card/applet.js';
import { HANDLERS } from '../card/commands/table.js';
import { AID, ATR, LIMITS, protocol, SW, T, describeSw, type SpecField } from '../sdk/spec.js';
import type { TicketFace, UsageRecord } from '../sdk/ticket.js';
import { encodeTicketFace, encodeUsageRecord, encodeVerificationCode, newUsageRecord } from '../sdk/ticket.js';
import { encodeTicketView, VIEW_STATUS, viewLengthFor } from '../sdk/commands/ticket-view.js';
import { CERTIFICATE_MAX } from '../sdk/commands/put-data.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { seal } from '../sdk/crypto/envelope.js';
import { getSuite } from '../sdk/crypto/suites.js';
import { signKeyCertificate } from '../sdk/roles/key-certificate.js';
import { decodeOne } from '../sdk/tlv.js';

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
      travelClass: '', fare: 0, currency: '', validFrom: 0, validUntil: 0, passenger: '', issuedAt: 0, flags: 0, kind: 0, maxEntries: 0, pricing: 0, card: new Uint8Array(8),
      holderRef: new Uint8Array(16), holderBinding: new Uint8Array(32),
    };
    expect(Object.keys(face).sort()).toEqual(protocol.ticketFace.map((f) => f.name).sort());
    const usage: UsageRecord = newUsageRecord();
    expect(Object.keys(usage).sort()).toEqual(protocol.usageRecord.map((f) => f.name).sort());
  });

  it('limits.viewLength is the smallest multiple of 16 that holds the largest view: every face field, usage field and view field at its spec maximum', () => {
    const max = (f: SpecField): number | string | Uint8Array => {
      const hi = Number((f.length ?? '1').split('..').pop());
      if (f.format === 'text') return 'X'.repeat(hi);
      if (f.format === 'bytes') return new Uint8Array(hi);
      if (f.format === 'date') return 99991231;
      return 2 ** (8 * hi) - 1;
    };
    const full = Object.fromEntries(protocol.ticketFace.map((f) => [f.name, max(f)])) as unknown as TicketFace;
    full.version = 2;
    // A face carries either passenger (8F) or the real-name pair (95, 96), never both: the largest of the two.
    const { holderRef, holderBinding, ...named } = full;
    const { passenger, ...realName } = full;
    expect(holderRef && holderBinding && passenger, 'every face field is in one of the two faces').toBeTruthy();
    const usage = Object.fromEntries(protocol.usageRecord.map((f) => [f.name, max(f)])) as unknown as UsageRecord;
    const neededFor = (face: TicketFace): number => {
      const view = encodeTicketView(
        { status: VIEW_STATUS.SHOWN, ticket: { sequenceNumber: 0xffff, face: encodeTicketFace(face), usage: encodeUsageRecord(usage) }, terminalChallenge: new Uint8Array(LIMITS.terminalChallengeLength), cardChallenge: new Uint8Array(LIMITS.challengeLength), cardSerial: new Uint8Array(8) },
        8192,
      );
      // Everything but the padding object, plus the smallest padding (an empty DF23, 3 bytes) and the 4-byte B2 header.
      let content = 0;
      const body = view.subarray(4);
      for (let o = 0; o < body.length; ) {
        const { tlv: item, next } = decodeOne(body, o);
        if (item.tag !== T.PADDING) content += next - o;
        o = next;
      }
      return 4 + content + 3;
    };
    const needed = Math.max(neededFor(named), neededFor(realName));
    expect(needed, 'the largest view must fit limits.viewLength: raise it (a multiple of 16)').toBeLessThanOrEqual(LIMITS.viewLength);
    expect(LIMITS.viewLength % 16).toBe(0);
    expect(LIMITS.viewLength - 16, 'limits.viewLength is larger than it needs to be: every byte costs air time on every tap').toBeLessThan(needed);
  });

  it('limits.verificationCodeSlot holds an RSA-3072 TF_V with the A4 of an RSA-3072 key certified for four 16-character operators', () => {
    const root = RsaPrivateKey.generate(3072);
    const signing = RsaPrivateKey.generate(3072);
    const cert = signKeyCertificate(root, { publicKey: signing.publicKey, scopes: ['A'.repeat(16), 'B'.repeat(16), 'C'.repeat(16), 'D'.repeat(16)], validFrom: 0, validUntil: 0xfffffffe });
    const a2 = encodeVerificationCode({ suite: 1, authorityKeyId: cert.keyId, signature: signing.sign(new Uint8Array(1)), certificate: cert.encoded });
    expect(a2.length).toBeLessThanOrEqual(LIMITS.verificationCodeSlot);
    expect(LIMITS.verificationCodeSlot % 16).toBe(0);
  });

  it('limits.maxResponseData holds the largest answer: an audited view with a 2048-byte card certificate sealed to an RSA-3072 terminal key', () => {
    const terminal = RsaPrivateKey.generate(3072);
    const view = new Uint8Array(viewLengthFor({ verificationCode: true, signingCertificate: new Uint8Array(CERTIFICATE_MAX) }));
    const sealed = seal(getSuite('rsa'), terminal.publicKey, new Uint8Array(8), view);
    expect(sealed.length).toBeLessThanOrEqual(LIMITS.maxResponseData);
    expect(LIMITS.maxGetResponseRounds).toBe(Math.ceil(LIMITS.maxResponseData / LIMITS.shortResponseChunk));
    expect(LIMITS.maxUsageEvents).toBe(0xfffe);
    expect(LIMITS.maxTickets).toBeLessThan(0xffff);
  });

  it('the threat model (README section 9) covers every class of DESIGN.md §8, and every test it names exists', () => {
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    const model = readme.slice(readme.indexOf('## 9. Threat model'));
    const classes = [...model.matchAll(/^\*\*(.+?)\*\*/gm)].map((m) => m[1]);
    expect(classes).toEqual([
      'A device between gate and card (relay, substituted answers).',
      'Replay of any recorded command.',
      'A ticket copied to another card.',
      'A card image copied back (rollback).',
      'Forged or altered tickets, receipts, bills.',
      'A keyless reader probing for travel data.',
      'A malicious card: answering forever, answering garbage, disappearing.',
      'A malicious terminal.',
      'Malformed APDUs and frames (card, vpcd bridge, PC/SC).',
      'Power cut at every write.',
      'Two processes on one card image or one store.',
      'Secrets in files other users can read.',
    ]);
    const refs = [...model.matchAll(/`([\w./-]+\.test\.ts)` › "([^"]+)"/g)].map((m) => ({ file: m[1], name: m[2] }));
    expect(refs.length).toBeGreaterThan(30);
    for (const { file, name } of refs) {
      const path = new URL(`../${file}`, import.meta.url);
      expect(existsSync(path), file).toBe(true);
      expect(readFileSync(path, 'utf8').includes(name), `${file} has no test named "${name}"`).toBe(true);
    }
    // Each class names at least one test.
    for (const part of model.split(/^\*\*/m).slice(1)) expect(part, part.slice(0, 60)).toMatch(/\.test\.ts` › "/);
  });

  it('the ATR checksum is right and the AID is proprietary (F0 prefix)', () => {
    expect(ATR.subarray(1).reduce((a, b) => a ^ b, 0)).toBe(0);
    expect(AID[0]).toBe(0xf0);
  });
});

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
