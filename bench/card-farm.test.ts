// The derived card farm against the real thing: a card derived from the seed holds exactly what a card
// personalised through the real commands (GENERATE KEY, PUT DATA, PUT KEY, LOCK) and loaded through LOAD holds,
// but for the RSA key pairs it never uses at a sym gate; both behave the same at a gate; farm cards are distinct.

import { describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.ts';
import { MemoryBackend } from '../card/nvm.ts';
import { decodeState, encodeState, type CardState } from '../card/state.ts';
import { CardSession } from '../host/session.ts';
import { EmulatorTransport } from '../host/transport/emulator.ts';
import { hex } from '../sdk/bytes.ts';
import { diversify } from '../sdk/crypto/symmetric.ts';
import { toServiceDate } from '../sdk/fields.ts';
import { verifySymReceipt } from '../sdk/roles/sym-receipts.ts';
import { PRICING, TICKET_KIND } from '../sdk/ticket.ts';
import { World } from '../testing/world.ts';
import { CardFarm, farmSerial, farmState, type FarmProfile } from './card-farm.ts';

const w = World.create('rsa');
const profile: FarmProfile = { suite: 'rsa', masterKey: w.masterKey, authority: { publicKey: w.keys.authorityKey.publicKey, scopes: ['*'] }, terminal: { publicKey: w.keys.terminalKeys.publicKey, scopes: ['*'] } };

/** The state without what only a real card has: its own RSA key pairs and their certificates. */
function withoutKeyPairs(s: CardState): Uint8Array {
  return encodeState({ ...s, encKey: undefined, signKey: undefined, encCert: undefined, signCert: undefined });
}

describe('card farm', () => {
  it('a derived card equals one personalised and loaded through the real commands (but for its unused RSA pairs), and taps the same', async () => {
    const serial = farmSerial('equivalence', 7);
    const real = await w.newCard({ serial });
    const day = toServiceDate(new Date(w.now * 1000));
    const face = w.ticketServer.createTicket({ serviceDate: day, kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: 255 });
    const signed = w.authority.sign(face, { serial });
    await real.issuing.load(w.authority.seal(signed, real.credentials));
    const derived = farmState(serial, profile, signed);
    const realState = decodeState(real.card.image);
    expect(realState.encKey && realState.signKey && realState.encCert && realState.signCert, 'the real card has its key pairs').toBeTruthy();
    expect(hex(withoutKeyPairs(realState))).toBe(hex(withoutKeyPairs(derived)));

    // The same taps on both: both pass, both receipts verify under the operator's master key, same TF_B after.
    const backend = new MemoryBackend();
    backend.write('image', 0, encodeState(derived));
    const copy = EticketCard.open(backend);
    const results = [];
    for (const card of [real.card, copy]) {
      const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(card)), { mode: 'sym', station: 'A01', gateId: 'A01-G1' });
      const r = await gate.passGate('entry');
      expect(r.decision.pass).toBe(true);
      verifySymReceipt(w.masterKey, serial, r.receipt!.encoded, r.receipt!.sym!);
      results.push(r.receipt!.usage);
    }
    expect(results[0]).toEqual(results[1]);
    expect(hex(withoutKeyPairs(decodeState(real.card.image)))).toBe(hex(withoutKeyPairs(decodeState(copy.image))));
  });

  it('cards are distinct: own serial and own diversified key, for every card of a farm, and across seeds', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20_000; i++) serials.add(hex(farmSerial('s1', i)));
    for (let i = 0; i < 1000; i++) serials.add(hex(farmSerial('s2', i)));
    expect(serials.size).toBe(21_000);
    const keys = new Set([0, 1, 2, 3].map((i) => hex(diversify(w.masterKey.key, farmSerial('s1', i), w.operator))));
    expect(keys.size).toBe(4);
  });

  it('a farm card opens per tap from its image and keeps what the tap wrote', async () => {
    const farm = new CardFarm('taps', profile, 100);
    const face = w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(w.now * 1000)), kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: 255 });
    farm.add(100, w.authority.sign(face, { serial: farm.serial(100) }));
    const before = farm.image(100);
    const card = farm.open(100);
    const r = await w.checkingTerminal(new CardSession(new EmulatorTransport(card)), { mode: 'sym' }).passGate('entry');
    expect(r.decision.pass).toBe(true);
    farm.save(100, card);
    expect(decodeState(farm.image(100)).tickets[0].usage.counter).toBe(1);
    farm.restore(100, before);
    expect(decodeState(farm.image(100)).tickets[0].usage.counter).toBe(0);
    expect(() => farm.add(102, w.authority.sign(face, { serial: farm.serial(102) }))).toThrow(RangeError);
  });

  it('a farm card opened in place taps on its stored image itself: the usage update lands in the farm\'s array, nothing copied', async () => {
    const farm = new CardFarm('in-place', profile, 0);
    const face = w.ticketServer.createTicket({ serviceDate: toServiceDate(new Date(w.now * 1000)), kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: 255 });
    farm.add(0, w.authority.sign(face, { serial: farm.serial(0) }));
    const stored = farm.image(0);
    const snapshot = stored.slice();
    for (const direction of ['entry', 'exit'] as const) {
      const card = farm.openInPlace(0);
      const r = await w.checkingTerminal(new CardSession(new EmulatorTransport(card)), { mode: 'sym' }).passGate(direction);
      expect(r.decision.pass).toBe(true);
      farm.save(0, card);
    }
    // A tap whose usage record keeps its length (the third) updates the farm's array itself.
    expect(decodeState(farm.image(0)).tickets[0].usage.counter).toBe(2);
    const before = farm.image(0);
    const card = farm.openInPlace(0);
    await w.checkingTerminal(new CardSession(new EmulatorTransport(card)), { mode: 'sym' }).passGate('entry');
    farm.save(0, card);
    expect(farm.image(0), 'an in-place usage update keeps the same array').toBe(before);
    expect(decodeState(before).tickets[0].usage.counter).toBe(3);
    expect(hex(snapshot)).not.toBe(hex(stored));
  });
});
