// The real-name API through the SDK's client, on both engines: a seller books a real-name ticket (the holder goes
// in once, comes back nowhere), a permitted gate reads it off the card and gets the holder, proven by the binding.
// Every refusal the issue lists, each with its reason in the answer (or the same 401) and in the access log:
// an unregistered terminal, no permission, wrong and reused TOTP, stale and replayed requests, the N+1-th read,
// a read after expiry; and no holder data in any reply or service log line.

import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hex } from '../../sdk/bytes.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { keyId } from '../../sdk/crypto/suite.js';
import { totpForStep } from '../../sdk/crypto/totp.js';
import { signRequest } from '../../sdk/roles/request-signing.js';
import { decodeTicketFace, type TicketFace } from '../../sdk/ticket.js';
import { World, type WorldCard } from '../../testing/world.js';
import { BackofficeClient, BackofficeHttpError } from '../../host/backoffice-client.js';
import { ENGINES } from '../../test/helpers/stores.js';
import { HOLDERS, MemoryVault, secretsOf, testTerminal, type TestTerminal } from '../../test/helpers/realname.js';
import { Backoffice } from '../service.js';
import type { Store } from '../store/store.js';
import { buildApp } from './app.js';

describe.each(ENGINES)('real-name API on $engine', ({ skip, open }) => {
  let store: Store;
  let dispose: () => Promise<void>;
  let app: FastifyInstance;
  let url: string;
  let world: World;
  let card: WorldCard;
  let bo: Backoffice;
  let acme: BackofficeClient;
  let gate: TestTerminal;
  let gateClient: BackofficeClient;
  let serviceId: number;
  const logged: Record<string, unknown>[] = [];
  const replies: string[] = [];

  const terminalClient = (t: TestTerminal, options: { now?: () => number } = {}) => new BackofficeClient({ url, clientId: t.client.clientId, signer: t.signer, realName: { decrypter: t.decrypter, totp: t.totp }, ...options });

  beforeAll(async () => {
    if (skip) return;
    ({ store, dispose } = await open());
    world = World.create('rsa', 'CR');
    const vault = new MemoryVault();
    bo = new Backoffice(store, { operator: 'CR', suite: 'rsa', rootPublicKey: world.keys.authorityKey.publicKey, root: () => world.keys.authorityKey, signing: () => world.keys.authorityKey, cardTrust: world.keys.cardTrust, masterKeys: () => [world.masterKey], holderVault: () => vault });
    app = await buildApp({ bo }, { log: (l) => logged.push(l) });
    // Every answer body the service sends, for the privacy check at the end.
    app.addHook('onSend', async (_req, _reply, payload) => {
      if (typeof payload === 'string') replies.push(payload);
      return payload;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const key = RsaPrivateKey.generate(2048);
    await store.addClient({ clientId: 'acme', role: 'seller', name: 'acme', operator: 'CR', suite: 'rsa', publicKey: key.publicKey, keyId: hex(keyId(key.publicKey)) });
    acme = new BackofficeClient({ url, clientId: 'acme', signer: key });
    gate = testTerminal('rsa', 'gate-bjs', 'gate', { station: 'BJS' });
    await bo.realName.registerTerminal(gate.client, gate.totp);
    await store.holders.grant('gate-bjs', { station: 'BJS' });
    gateClient = terminalClient(gate);
    card = await world.newCard();
    const today = Number(new Date().toISOString().slice(0, 10).replace(/-/g, ''));
    serviceId = (await store.addService({ operator: 'CR', code: 'G9', serviceDate: today, origin: 'BJS', destination: 'SHH', kind: 1 }, [{ class: '2', seats: 20, price: 55300, currency: 'CNY' }])).serviceId;
    await store.holders.setReadLimit(1, 2);
  });
  afterAll(async () => {
    await app?.close();
    await dispose?.();
  });

  /** Book a real-name ticket through the API, load it, and read its face back from the card as a gate does. */
  async function bookAndRead(holderIndex: number): Promise<TicketFace> {
    const booking = await acme.book({ service: serviceId, class: '2', card: card.credentials, holder: HOLDERS[holderIndex] });
    expect(JSON.stringify(booking)).not.toContain(HOLDERS[holderIndex].name);
    await card.issuing.load(Buffer.from(booking.sealed, 'hex'));
    const g = world.checkingTerminal(card.session, { station: 'BJS' });
    await g.select();
    return (await g.verifyTicket({ tid: booking.tid })).face;
  }

  // TOTP steps are real time here: each test gets gates of its own, so no test finds its step spent by another.
  let gates = 0;
  async function newGate(): Promise<{ t: TestTerminal; client: BackofficeClient }> {
    const t = testTerminal('rsa', `gate-${++gates}`, 'gate', { station: 'BJS' });
    await bo.realName.registerTerminal(t.client, t.totp);
    await store.holders.grant(t.client.clientId, { station: 'BJS' });
    return { t, client: terminalClient(t) };
  }

  async function lastLog(tid?: string) {
    return (await store.holders.accessLog({ tid })).at(-1);
  }

  it.skipIf(skip)('a permitted gate reads the holder of the ticket on the card; the answer is proven by the binding', async () => {
    const face = await bookAndRead(0);
    expect(face.passenger).toBeUndefined();
    const r = await gateClient.holder(face);
    expect(r).toMatchObject({ holder: HOLDERS[0], readsLeft: 1 });
    expect(await lastLog(face.tid)).toMatchObject({ clientId: 'gate-bjs', outcome: 'read', readsLeft: 1 });
  });

  it.skipIf(skip)('an unregistered terminal: 401 like any bad signature, logged by ticket under the id it claimed', async () => {
    const face = await bookAndRead(1);
    const ghost = testTerminal('rsa', 'ghost-9', 'gate');
    const e = await terminalClient(ghost).holder(face).catch((x) => x);
    expect(e).toMatchObject({ status: 401, error: 'unauthorized' });
    expect(await lastLog(face.tid)).toMatchObject({ clientId: 'ghost-9', outcome: 'refused', reason: 'unknown_client' });
  });

  it.skipIf(skip)('a terminal without permission for this ticket: 403 not_permitted, logged', async () => {
    const face = await bookAndRead(2);
    const far = testTerminal('rsa', 'gate-xyz', 'gate', { station: 'XYZ' });
    await bo.realName.registerTerminal(far.client, far.totp);
    await store.holders.grant('gate-xyz', { station: 'XYZ' });
    expect(await terminalClient(far).holder(face).catch((x) => x)).toMatchObject({ status: 403, error: 'not_permitted' });
    expect(await lastLog(face.tid)).toMatchObject({ clientId: 'gate-xyz', outcome: 'refused', reason: 'not_permitted' });
    // An issuing terminal (a kiosk) is no checking terminal at all.
    const kiosk = testTerminal('rsa', 'kiosk-9', 'issuing');
    await store.addClient(kiosk.client);
    expect(await terminalClient(kiosk).request('POST', `/v1/tickets/${face.tid}/holder`, { holderRef: hex(face.holderRef!), challenge: '00'.repeat(16), totp: { code: '123456', time: Math.floor(Date.now() / 1000) } }).catch((x) => x)).toMatchObject({ status: 403, error: 'not_a_checking_terminal' });
    expect(await lastLog(face.tid)).toMatchObject({ clientId: 'kiosk-9', reason: 'not_a_checking_terminal' });
  });

  it.skipIf(skip)('a wrong TOTP code, a reused one, one off the clock: 403 with the reason, logged', async () => {
    const face = await bookAndRead(0);
    const { t: gate, client: gateClient } = await newGate();
    const p = gate.totp.parameters;
    const path = `/v1/tickets/${face.tid}/holder`;
    const now = Math.floor(Date.now() / 1000);
    const step = Math.floor(now / p.period);
    const good = totpForStep(gate.totp.secret, step, p);
    const body = (code: string, time = step * p.period) => ({ holderRef: hex(face.holderRef!), challenge: '11'.repeat(16), totp: { code, time } });
    expect(await gateClient.request('POST', path, body(good === '123456' ? '654321' : '123456')).catch((x) => x)).toMatchObject({ status: 403, error: 'totp_invalid' });
    expect(await lastLog(face.tid)).toMatchObject({ reason: 'totp_invalid' });
    await gateClient.request('POST', path, body(good));
    // The same code in a new request (new nonce, new signature): the step is spent.
    expect(await gateClient.request('POST', path, body(good)).catch((x) => x)).toMatchObject({ status: 403, error: 'totp_reused' });
    expect(await lastLog(face.tid)).toMatchObject({ reason: 'totp_reused' });
    const late = Math.floor(now / p.period) - 3;
    expect(await gateClient.request('POST', path, body(totpForStep(gate.totp.secret, late, p), late * p.period)).catch((x) => x)).toMatchObject({ status: 403, error: 'totp_clock' });
    expect(await lastLog(face.tid)).toMatchObject({ reason: 'totp_clock' });
  });

  it.skipIf(skip)('a stale request and a replayed one: 401, logged with their reasons', async () => {
    const face = await bookAndRead(1);
    const { t: gate } = await newGate();
    const stale = terminalClient(gate, { now: () => Date.now() - 10 * 60_000 });
    expect(await stale.holder(face).catch((x) => x)).toMatchObject({ status: 401 });
    expect(await lastLog(face.tid)).toMatchObject({ clientId: gate.client.clientId, reason: 'stale_timestamp' });
    // A request recorded on the wire and sent again, byte for byte.
    const path = `/v1/tickets/${face.tid}/holder`;
    const p = gate.totp.parameters;
    const step = Math.floor(Date.now() / 1000 / p.period);
    const text = JSON.stringify({ holderRef: hex(face.holderRef!), challenge: '22'.repeat(16), totp: { code: totpForStep(gate.totp.secret, step, p), time: step * p.period } });
    const auth = signRequest(gate.signer, gate.client.clientId, 'POST', path, text);
    const send = () => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: text });
    expect((await send()).status).toBe(200);
    const replay = await send();
    expect(replay.status).toBe(401);
    expect(await lastLog(face.tid)).toMatchObject({ reason: 'replayed_nonce' });
  });

  it.skipIf(skip)('the N+1-th read: 410 reads_exhausted (N = 2 for this kind), logged', async () => {
    const face = await bookAndRead(2);
    const { client: reader } = await newGate();
    expect((await reader.holder(face)).readsLeft).toBe(1);
    // One client of one terminal moves to the next TOTP step by itself (the window allows one step ahead).
    expect((await reader.holder(face)).readsLeft).toBe(0);
    const e = await (await newGate()).client.holder(face).catch((x) => x);
    expect(e).toBeInstanceOf(BackofficeHttpError);
    expect(e).toMatchObject({ status: 410, error: 'reads_exhausted' });
    expect(await lastLog(face.tid)).toMatchObject({ reason: 'reads_exhausted' });
  });

  it.skipIf(skip)('a read after expiry: 410 expired, logged; the record is gone', async () => {
    const now = Math.floor(Date.now() / 1000);
    const today = Number(new Date().toISOString().slice(0, 10).replace(/-/g, ''));
    const out = await bo.issue({ request: { serviceDate: today, origin: 'BJS', kind: 1, validFrom: now - 7200, validUntil: now - 1 }, card: card.credentials, holder: HOLDERS[0] });
    const face = decodeTicketFace(out.ticket.face);
    const { t, client } = await newGate();
    const e = await client.holder(face).catch((x) => x);
    expect(e).toMatchObject({ status: 410, error: 'expired' });
    expect(await lastLog(face.tid)).toMatchObject({ clientId: t.client.clientId, reason: 'expired' });
    expect(await store.holders.record('CR', face.tid)).toBeUndefined();
  });

  it.skipIf(skip)('a malformed holder request is refused (400) and logged; no reply and no log line ever carries holder data', async () => {
    const face = await bookAndRead(0);
    const { client: gateClient } = await newGate();
    expect(await gateClient.request('POST', `/v1/tickets/${face.tid}/holder`, { holderRef: 'zz', totp: {}, challenge: 1 }).catch((x) => x)).toMatchObject({ status: 400 });
    expect(await lastLog(face.tid)).toMatchObject({ reason: 'bad_request' });
    // A booking with a bad holder is a 400 that does not echo it back.
    const bad = await acme.book({ service: serviceId, class: '2', card: card.credentials, holder: { name: 'Li\u0007Wei', document: { type: 'id-card', number: '11010519491231002X' } } }).catch((x) => x);
    expect(bad).toMatchObject({ status: 400 });
    expect(await acme.book({ service: serviceId, class: '2', card: card.credentials, passenger: 'Li Wei', holder: HOLDERS[0] }).catch((x) => x)).toMatchObject({ status: 400 });
    const everything = JSON.stringify(logged) + replies.join('\n') + JSON.stringify(await store.holders.accessLog());
    for (const h of HOLDERS) for (const s of secretsOf(h)) expect(everything.includes(s), s).toBe(false);
    expect(replies.length).toBeGreaterThan(10);
    expect(logged.filter((l) => l.event === 'error')).toEqual([]);
  });
});
