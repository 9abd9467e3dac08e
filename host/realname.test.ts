// The gate's real-name step over the API (embedded store): a real-name ticket passes and its holder is checked
// against the face; with the back office unreachable or too slow it still passes, flagged not_checked; a record
// swapped to another ticket is a mismatch; tickets without a holder and exits (by default) fetch nothing.

import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Backoffice } from '../backoffice/service.js';
import { buildApp } from '../backoffice/http/app.js';
import type { Store } from '../backoffice/store/store.js';
import type { HolderRecord } from '../sdk/roles/realname.js';
import { decodeTicketFace, type TicketFace } from '../sdk/ticket.js';
import { World, type WorldCard } from '../testing/world.js';
import { ENGINES } from '../test/helpers/stores.js';
import { HOLDERS, MemoryVault, testTerminal, type TestTerminal } from '../test/helpers/realname.js';
import { BackofficeClient } from './backoffice-client.js';
import { BackofficeHolderChecker, type RealNameChecker } from './realname.js';

const pglite = ENGINES.find((e) => e.engine === 'pglite')!;


// Tests that are not about the holder wait give it a bound a loaded machine cannot reach: the 2 s default is a
// gate's real-time budget, and a busy 2-core machine can take longer to answer (the timeout test sets its own).
const HOLDER_WAIT_BOUND_MS = 60_000;
describe('real-name check at the gate', () => {
  let store: Store;
  let dispose: () => Promise<void>;
  let app: FastifyInstance;
  let url: string;
  let world: World;
  let bo: Backoffice;
  let gateT: TestTerminal;
  let n = 0;

  beforeAll(async () => {
    ({ store, dispose } = await pglite.open());
    world = World.create('rsa', 'CR');
    const vault = new MemoryVault();
    bo = new Backoffice(store, { operator: 'CR', suite: 'rsa', rootPublicKey: world.keys.authorityKey.publicKey, root: () => world.keys.authorityKey, signing: () => world.keys.authorityKey, cardTrust: world.keys.cardTrust, masterKeys: () => [world.masterKey], holderVault: () => vault }, () => world.now);
    app = await buildApp({ bo }, { log: () => undefined });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    gateT = testTerminal('rsa', 'gate-bjs', 'gate', { station: 'BJS' });
    await bo.realName.registerTerminal(gateT.client, gateT.totp);
    await store.holders.grant('gate-bjs', { station: 'BJS' });
  });
  // The gate's back-office client takes its TOTP time from the real clock; the back office checks it against the
  // world's (its clock is world.now). Set at each test, so a slow run of the file (CI on a loaded machine: the
  // world's clock once lagged by more than the TOTP window) never makes a code look out of time.
  beforeEach(() => {
    world.now = Math.floor(Date.now() / 1000);
  });
  afterAll(async () => {
    await app?.close();
    await dispose?.();
  });

  // One gate, one client: it spends its TOTP steps one by one, as a gate process does.
  let shared: BackofficeHolderChecker | undefined;
  const checker = (base = url) => {
    const make = () => new BackofficeHolderChecker(new BackofficeClient({ url: base, clientId: 'gate-bjs', signer: gateT.signer, realName: { decrypter: gateT.decrypter, totp: gateT.totp }, timeoutMs: HOLDER_WAIT_BOUND_MS }));
    if (base !== url) return make();
    return (shared ??= make());
  };

  async function ticketOnCard(holder?: HolderRecord): Promise<{ card: WorldCard; face: TicketFace }> {
    const card = await world.newCard();
    const today = Number(new Date(world.now * 1000).toISOString().slice(0, 10).replace(/-/g, ''));
    const out = await bo.issue({ request: { serviceDate: today, tid: `CR-G-${++n}`, origin: 'BJS', destination: 'SHH', ...(holder ? {} : { passenger: 'ANON' }) }, card: card.credentials, holder });
    await card.issuing.load(out.ticket.sealed);
    return { card, face: decodeTicketFace(out.ticket.face) };
  }

  it('a real-name ticket passes and its holder is checked against the face, while the card records the entry', async () => {
    const { card } = await ticketOnCard(HOLDERS[0]);
    const gate = world.checkingTerminal(card.session, { station: 'BJS' });
    gate.config.realName = checker();
    gate.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    const r = await gate.passGate('entry');
    expect(r.decision.pass).toBe(true);
    expect(r.receipt).toBeDefined();
    expect(r.realName).toMatchObject({ status: 'checked', holder: HOLDERS[0], readsLeft: 2 });
    // The exit (not checked by default) spends no read.
    const exit = world.checkingTerminal(card.session, { station: 'SHH' });
    exit.config.realName = checker();
    exit.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    const out = await exit.passGate('exit');
    expect(out.decision.pass).toBe(true);
    expect(out.realName).toBeUndefined();
  });

  it('offline (back office unreachable) the ticket still passes, flagged not_checked: unreachable', async () => {
    const { card } = await ticketOnCard(HOLDERS[1]);
    const gate = world.checkingTerminal(card.session, { station: 'BJS' });
    gate.config.realName = checker('http://127.0.0.1:9');
    gate.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    const r = await gate.passGate('entry');
    expect(r.decision.pass).toBe(true);
    expect(r.receipt).toBeDefined();
    expect(r.realName).toMatchObject({ status: 'not_checked', reason: 'unreachable' });
    expect(r.realName!.holder).toBeUndefined();
  });

  it('a back office that does not answer in time: the tap goes on, not_checked: timeout', async () => {
    const { card } = await ticketOnCard(HOLDERS[2]);
    const gate = world.checkingTerminal(card.session, { station: 'BJS' });
    const never: RealNameChecker = { check: () => new Promise(() => undefined) };
    gate.config.realName = never;
    gate.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    gate.config.realNameTimeoutMs = 50;
    const r = await gate.passGate('entry');
    expect(r.decision.pass).toBe(true);
    expect(r.realName).toMatchObject({ status: 'not_checked', reason: 'timeout' });
  });

  it('a holder record swapped to another ticket in the back office: mismatch, and the holder is not shown', async () => {
    const a = await ticketOnCard(HOLDERS[0]);
    const b = await ticketOnCard(HOLDERS[1]);
    // An insider with the master key puts A's record (and its salt) where B's was.
    const openRecord = (bo.realName as unknown as { openRecord(r: unknown, ref: Uint8Array): { salt: Uint8Array; holder: HolderRecord } }).openRecord.bind(bo.realName);
    const plainA = openRecord((await store.holders.record('CR', a.face.tid))!, a.face.holderRef!);
    await store.transaction(async (tx) => {
      await tx.query('DELETE FROM holder_records WHERE tid = $1', [b.face.tid]);
      await tx.query('DELETE FROM realname_tickets WHERE tid = $1', [b.face.tid]);
      await bo.realName.recordIssued(b.face, plainA.salt, plainA.holder, tx);
    });
    const gate = world.checkingTerminal(b.card.session, { station: 'BJS' });
    gate.config.realName = checker();
    gate.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    const r = await gate.passGate('entry');
    expect(r.realName).toMatchObject({ status: 'mismatch', reason: 'binding' });
    expect(r.realName!.holder).toBeUndefined();
  });

  it('refused by the service (not permitted here): not_checked with the service\'s reason', async () => {
    const { card } = await ticketOnCard(HOLDERS[2]);
    const far = testTerminal('rsa', 'gate-far', 'gate', { station: 'XYZ' });
    await bo.realName.registerTerminal(far.client, far.totp);
    const gate = world.checkingTerminal(card.session, { station: 'BJS' });
    gate.config.realName = new BackofficeHolderChecker(new BackofficeClient({ url, clientId: 'gate-far', signer: far.signer, realName: { decrypter: far.decrypter, totp: far.totp } }));
    gate.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    expect((await gate.passGate('entry')).realName).toMatchObject({ status: 'not_checked', reason: 'not_permitted' });
  });

  it('a ticket without a holder fetches nothing; a gate without a back office says no_service', async () => {
    const plain = await ticketOnCard();
    const gate = world.checkingTerminal(plain.card.session, { station: 'BJS' });
    gate.config.realName = checker();
    gate.config.realNameTimeoutMs ??= HOLDER_WAIT_BOUND_MS;
    expect((await gate.passGate('entry')).realName).toBeUndefined();
    const rn = await ticketOnCard(HOLDERS[0]);
    const bare = world.checkingTerminal(rn.card.session, { station: 'BJS' });
    const r = await bare.passGate('entry');
    expect(r.decision.pass).toBe(true);
    expect(r.realName).toMatchObject({ status: 'not_checked', reason: 'no_service' });
  });
});
