// ISO/IEC 7816-4 behaviour of the applet as hex command/response tables: SELECT and FCI, the four
// cases, short and extended Le, 61XX / GET RESPONSE, 6CXX, chaining, malformed APDUs, life cycle.

import { beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from './applet.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { concat, fromHex, hex } from '../sdk/bytes.js';
import { AID, ATR, SW, T } from '../sdk/spec.js';
import { TlvMap } from '../sdk/tlv.js';
import type { WorldCard } from '../testing/world.js';
import { authenticateRaw, expectRawRefusal, worldFor } from '../test/helpers/world.js';

const SELECT = `00A40400${hex(new Uint8Array([AID.length]))}${hex(AID)}`;

function tx(card: EticketCard, h: string): { data: string; sw: string } {
  const r = card.transmit(fromHex(h));
  return { data: hex(r.subarray(0, r.length - 2)), sw: hex(r.subarray(r.length - 2)) };
}

describe('ISO 7816-4 framing', () => {
  let c: WorldCard;
  let card: EticketCard;
  beforeAll(async () => {
    c = await worldFor('rsa').newCard();
    card = c.card;
  });

  it('the ATR is the spec\'s, with a correct TCK and the extended-length capability bit', () => {
    expect(hex(card.atr())).toBe(hex(ATR));
    let tck = 0;
    for (const b of ATR.subarray(1)) tck ^= b;
    expect(tck).toBe(0);
    expect(hex(ATR)).toContain('7300' + '00C0');
  });

  it.each([
    ['SELECT by AID returns the FCI', `${SELECT}00`, '9000'],
    ['SELECT without FCI (P2=0C)', `00A4040C${hex(new Uint8Array([AID.length]))}${hex(AID)}`, '9000'],
    ['SELECT of an unknown AID', '00A4040005A00000000100', '6A82'],
    ['SELECT with P1=00', `00A40000${hex(new Uint8Array([AID.length]))}${hex(AID)}00`, '6A86'],
    ['SELECT with no data (case 1)', '00A40400', '6700'],
    ['Lc larger than the data', '00A4040009F04554', '6700'],
    ['Lc smaller than the data', '00A4040002F0455449434B455401', '6700'],
    ['a header only 3 bytes long', '00A404', '6700'],
    ['unknown INS', '80FF0000', '6D00'],
    ['known INS under the wrong class', '00CA00C600', '6E00'],
    ['CLA FF', 'FFA4040000', '6E00'],
    ['CLA A0', 'A0A4040000', '6E00'],
    ['logical channel 1', '01A4040000', '6881'],
    ['secure messaging bits', '0CA4040000', '6882'],
    ['SELECT as case 2E (extended Le, no data)', '00A40400000000', '6700'],
  ])('%s → %s', (_name, apdu, sw) => {
    expect(tx(card, apdu).sw).toBe(sw);
  });

  it('the FCI names the AID, suite, life cycle and protocol version 2, and nothing that identifies the card', () => {
    const r = tx(card, `${SELECT}00`);
    const fci = TlvMap.parse(TlvMap.parse(fromHex(r.data)).require(T.FCI));
    expect(hex(fci.require(T.DF_NAME))).toBe(hex(AID));
    const prop = TlvMap.parse(fci.require(T.FCI_PROPRIETARY));
    expect(prop.items.map((i) => i.tag)).toEqual([T.SUITE, T.LIFECYCLE, T.PROTOCOL_VERSION]);
    expect(prop.require(T.LIFECYCLE)[0]).toBe(7);
    expect(prop.require(T.PROTOCOL_VERSION)[0]).toBe(2);
    expect(r.data).not.toContain(hex(c.credentials.serial));
  });

  it('commands need the application selected first (COMMAND_NOT_ALLOWED), and power off forgets the selection', () => {
    tx(card, `${SELECT}00`);
    expect(tx(card, '80CA00D100').sw).toBe('9000');
    card.powerOff();
    card.powerOn();
    expect(tx(card, '80CA00D100').sw).toBe('6986');
    tx(card, `${SELECT}00`);
    card.reset();
    expect(tx(card, '80CA00D100').sw).toBe('6986');
  });

  describe('Le handling', () => {
    beforeAll(() => {
      // The identifying objects (serial, certificates) answer only an authenticated issuer.
      authenticateRaw(card, worldFor('rsa'));
    });

    it('GET CHALLENGE with the wrong Le answers 6C08, with Le=08 eight bytes', () => {
      expect(tx(card, '0084000004')).toEqual({ data: '', sw: '6C08' });
      const r = tx(card, '0084000008');
      expect(r.sw).toBe('9000');
      expect(r.data).toHaveLength(16);
    });

    it('a short response asked with too small an Le answers 6CXX with the exact length', () => {
      expect(tx(card, '80CA00C604')).toEqual({ data: '', sw: '6C08' });
      expect(tx(card, '80CA00C608')).toEqual({ data: hex(c.credentials.serial), sw: '9000' });
    });

    it('without Le, response data wait behind 61XX for GET RESPONSE', () => {
      expect(tx(card, '80CA00C6')).toEqual({ data: '', sw: '6108' });
      expect(tx(card, '00C0000008')).toEqual({ data: hex(c.credentials.serial), sw: '9000' });
    });

    it('GET RESPONSE with nothing pending is refused (CONDITIONS_NOT_SATISFIED)', () => {
      expect(tx(card, '00C0000000').sw).toBe('6985');
    });

    it('a response over 256 bytes comes in 61XX chunks with short Le, whole with extended Le', () => {
      const full = c.credentials.signingCertificate!;
      expect(full.length).toBeGreaterThan(512);
      const first = tx(card, '80CA00D600');
      expect(first.data.length / 2).toBe(256);
      expect(first.sw.startsWith('61')).toBe(true);
      let data = first.data;
      let sw = first.sw;
      while (sw.startsWith('61')) {
        const r = tx(card, `00C00000${sw.slice(2)}`);
        data += r.data;
        sw = r.sw;
      }
      expect(sw).toBe('9000');
      expect(data).toBe(hex(full));
      expect(tx(card, '80CA00D6000000')).toEqual({ data: hex(full), sw: '9000' });
    });

    it('another command discards a pending response', () => {
      expect(tx(card, '80CA00C6').sw).toBe('6108');
      expect(tx(card, '80CA00D100').sw).toBe('9000');
      expect(tx(card, '00C0000008').sw).toBe('6985');
    });
  });

  describe('command chaining and extended length', () => {
    it('the session chains a LOAD over short APDUs when extended length is off', async () => {
      const w = worldFor('rsa');
      const seen: number[] = [];
      const session = new CardSession(new EmulatorTransport(card), { extendedLength: false, trace: (e) => e.apdu[1] === 0x50 && seen.push(e.apdu[0]) });
      await session.select();
      const face = w.ticketServer.createTicket({ serviceDate: '2030-01-01', train: 'CH1' });
      const sealed = w.authority.issue(face, c.credentials).sealed;
      expect(sealed.length).toBeGreaterThan(510);
      await session.send('LOAD', { data: sealed });
      expect(seen.filter((cla) => cla === 0x90).length).toBe(Math.ceil(sealed.length / 255) - 1);
      expect(seen[seen.length - 1]).toBe(0x80); // the last part closes the chain
    });

    it('the same LOAD goes in one extended APDU when the reader supports it', async () => {
      const w = worldFor('rsa');
      const apdus: Uint8Array[] = [];
      const session = new CardSession(new EmulatorTransport(card), { extendedLength: true, trace: (e) => apdus.push(e.apdu) });
      await session.select();
      const sealed = w.authority.issue(w.ticketServer.createTicket({ serviceDate: '2030-01-02' }), c.credentials).sealed;
      await session.send('LOAD', { data: sealed });
      const load = apdus.filter((a) => a[1] === 0x50);
      expect(load).toHaveLength(1);
      expect(load[0][4]).toBe(0); // extended Lc marker
    });

    it('a chain left open is discarded when another command arrives (LAST_COMMAND_EXPECTED)', () => {
      tx(card, `${SELECT}00`);
      expect(tx(card, '9050000003B10100').sw).toBe('9000');
      expectRawRefusal(card, fromHex('80CA00D100'), SW.LAST_COMMAND_EXPECTED);
      expect(tx(card, '80CA00D100').sw).toBe('9000');
    });

    it('chaining on a command that takes no chained data (CHAINING_NOT_SUPPORTED)', () => {
      tx(card, `${SELECT}00`);
      expect(tx(card, '90CA00C60100').sw).toBe('6884');
    });

    it('a chain longer than the buffer is refused (CHAINING_NOT_SUPPORTED) and the card is unchanged', () => {
      tx(card, `${SELECT}00`);
      const part = `905000000000FF${'00'.repeat(255)}`;
      let sw = '9000';
      for (let i = 0; i < 20 && sw === '9000'; i++) sw = tx(card, part).sw;
      expect(sw).toBe('6884');
      expect(tx(card, '80CA00D100').sw).toBe('9000');
    });

    it('an extended APDU with a wrong Lc is refused (WRONG_LENGTH)', () => {
      expect(tx(card, '80500000000006B103800101').sw).toBe('6700');
    });
  });

  describe('malformed command data', () => {
    beforeAll(() => {
      tx(card, `${SELECT}00`);
    });
    it.each([
      ['truncated TLV', '8050000003B10580'],
      ['TLV length past the data', '8050000004B1FF8001'],
      ['trailing bytes after the envelope', '8050000005B1008001FF'],
      ['non-minimal length encoding', '8050000004B1810000'],
      ['unknown tag in a VERIFY query', '805400000CC10811111111111111119900'],
      ['VERIFY without a challenge', '805400000AC1081111111111111111'],
    ])('%s → INCORRECT_DATA (6A80), image unchanged', (_n, apdu) => {
      const before = card.image.slice();
      const r = tx(card, apdu);
      expect(r.sw).toBe('6A80');
      expect(Buffer.from(card.image).equals(Buffer.from(before))).toBe(true);
    });
  });

  describe('life cycle', () => {
    it('personalisation commands are refused once locked, ticket commands before', async () => {
      tx(card, `${SELECT}00`);
      expect(tx(card, '80460100').sw).toBe('6985');
      expect(tx(card, '805E0000').sw).toBe('6985');
      const blank = EticketCard.inMemory();
      tx(blank, `${SELECT}00`);
      expect(tx(blank, '8050000003B10100').sw).toBe('6985');
      expect(tx(blank, '0084000008').sw).toBe('6985');
      expect(tx(blank, '805E0000').sw).toBe('6985'); // incomplete: LOCK refused
      expect(tx(blank, '805E000000').sw).toBe('6700'); // case 1 with Le
      expect(tx(blank, '80CA00DB00').sw).toBe('6A88'); // no identity on an RSA card
    });

    it('GET DATA reports capacity and the installed key ids to an authenticated issuer', () => {
      tx(card, `${SELECT}00`);
      expect(tx(card, '80CA00D800').sw).toBe('6982');
      authenticateRaw(card, worldFor('rsa'));
      const cap = fromHex(tx(card, '80CA00D800').data);
      expect(cap.length).toBe(12);
      const keys = fromHex(tx(card, '80CA00D900').data);
      // authority, terminal (pki gate mode) and the diversified key of gate mode sym
      expect(keys.length).toBe(27);
      expect(concat(keys.subarray(0, 1), keys.subarray(9, 10), keys.subarray(18, 19))).toEqual(new Uint8Array([1, 2, 3]));
    });
  });
});
