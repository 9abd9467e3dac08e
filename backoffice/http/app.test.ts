// The HTTP API through the SDK's typed client, on both engines: a seller books, fetches the sealed ticket and
// the bill, cancels; an issuing terminal loads what waits for a card; replayed, stale, forged and unknown
// requests get the same 401; wrong roles 403; another seller's booking is "not found"; hostile bodies get a
// 4xx with a reason, never a 500 or a stack.

import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, hex } from '../../sdk/bytes.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { keyId } from '../../sdk/crypto/suite.js';
import { signRequest } from '../../sdk/roles/request-signing.js';
import { World, type WorldCard } from '../../testing/world.js';
import { BackofficeClient, BackofficeHttpError } from '../../host/backoffice-client.js';
import { IssuingTerminal } from '../../host/issuing.js';
import { CardSession } from '../../host/session.js';
import { EmulatorTransport } from '../../host/transport/emulator.js';
import { IssuerAuthorizationRequiredError } from '../../sdk/errors.js';
import { ENGINES } from '../../test/helpers/stores.js';
import { Backoffice } from '../service.js';
import type { Store } from '../store/store.js';
import { buildApp } from './app.js';

describe.each(ENGINES)('HTTP API on $engine', ({ skip, open }) => {
  let store: Store;
  let dispose: () => Promise<void>;
  let app: FastifyInstance;
  let url: string;
  let world: World;
  let card: WorldCard;
  let acme: BackofficeClient;
  let other: BackofficeClient;
  let kiosk: BackofficeClient;
  let serviceId: number;
  const logged: Record<string, unknown>[] = [];

  async function client(id: string, role: 'seller' | 'terminal', kind: 'issuing' | 'gate' = 'issuing'): Promise<BackofficeClient> {
    const key = RsaPrivateKey.generate(2048);
    const certificate = world.keys.ca!.certifyClientKey(id, role, key.publicKey);
    await store.addClient({ clientId: id, role, name: id, operator: 'CR', suite: 'rsa', publicKey: key.publicKey, certificate, keyId: hex(keyId(key.publicKey)), kind: role === 'terminal' ? kind : undefined });
    return new BackofficeClient({ url, clientId: id, signer: key });
  }

  beforeAll(async () => {
    if (skip) return;
    ({ store, dispose } = await open());
    world = World.create('rsa', 'CR');
    const bo = new Backoffice(store, { operator: 'CR', suite: 'rsa', rootPublicKey: world.keys.authorityKey.publicKey, root: () => world.keys.authorityKey, signing: () => world.keys.authorityKey, cardTrust: world.keys.cardTrust, masterKeys: () => [world.masterKey] });
    app = await buildApp({ bo }, { log: (l) => logged.push(l) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    acme = await client('acme', 'seller');
    other = await client('other', 'seller');
    kiosk = await client('kiosk-1', 'terminal');
    card = await world.newCard();
    serviceId = (await store.addService({ operator: 'CR', code: 'G7', serviceDate: 20300301, origin: 'BJS', destination: 'SHH' }, [{ class: '2', seats: 3, price: 55300, currency: 'CNY' }])).serviceId;
  });
  afterAll(async () => {
    await app?.close();
    await dispose?.();
  });

  it.skipIf(skip)('a seller books (once per request id), fetches sealed ticket and bill; the terminal loads it; the bill verifies', async () => {
    expect((await acme.services({ date: '2030-03-01' }))[0]).toMatchObject({ serviceId, code: 'G7', classes: [{ class: '2', seatsLeft: 3 }] });
    const booking = await acme.book({ service: serviceId, class: '2', card: card.credentials, passenger: 'Li Wei', requestId: 'order-1' });
    expect(booking).toMatchObject({ status: 'sealed', seller: 'acme', class: '2', coach: '01', price: 55300, currency: 'CNY', bill: { kind: 'sale', seller: 'acme', price: 55300 } });
    expect(await acme.book({ service: serviceId, class: '2', card: card.credentials, requestId: 'order-1' })).toMatchObject({ tid: booking.tid, seat: booking.seat });
    expect((await acme.services())[0].classes[0].seatsLeft).toBe(2);
    expect(hex(await acme.sealedTicket(booking.tid))).toBe(booking.sealed);
    const pending = await kiosk.pending(card.credentials.serial);
    expect(pending.map((p) => p.tid)).toEqual([booking.tid]);
    const loaded = await card.issuing.load(pending[0].sealed);
    expect(await kiosk.loaded(booking.tid, card.credentials.serial, loaded.sequenceNumber)).toEqual({ tid: booking.tid, status: 'loaded' });
    expect(await kiosk.pending(card.credentials.serial)).toEqual([]);
    const bill = await acme.bill(booking.tid);
    expect(await acme.verify({ bill })).toMatchObject({ ok: true, kind: 'bill', signer: { role: 'root' } });
    expect(await acme.verify({ bill: { ...bill, price: 1 } })).toMatchObject({ ok: false, reason: expect.stringMatching(/does not verify/) });
    const keys = await kiosk.keys();
    expect(keys.keys.map((k) => k.keyId)).toContain(hex(keyId(world.keys.authorityKey.publicKey)));
  });

  it.skipIf(skip)('an issuing terminal gets EXTERNAL AUTHENTICATE data for a card challenge and reads the card with it; a gate terminal and a seller are refused (403), a bad challenge is 400', async () => {
    const session = new CardSession(new EmulatorTransport(card.card));
    // Without an authorisation a locked card keeps its serial.
    await expect(new IssuingTerminal(session).open()).rejects.toBeInstanceOf(IssuerAuthorizationRequiredError);
    const issuing = new IssuingTerminal(session, { authorize: (c) => kiosk.authorizeIssuer(c) });
    const creds = await issuing.credentials();
    expect(hex(creds.serial)).toBe(hex(card.credentials.serial));
    expect(logged.some((l) => l.event === 'issuer_authorization' && l.client === 'kiosk-1')).toBe(true);
    const gate = await client('gate-1', 'terminal', 'gate');
    for (const who of [gate, acme]) {
      const e = await who.authorizeIssuer(new Uint8Array(8)).catch((x: unknown) => x);
      expect(e, who.clientId).toBeInstanceOf(BackofficeHttpError);
      expect((e as BackofficeHttpError).status, who.clientId).toBe(403);
    }
    const bad = await kiosk.request('POST', '/v1/terminal/authorization', { challenge: '00' }).catch((x: unknown) => x);
    expect((bad as BackofficeHttpError).status).toBe(400);
  });

  it.skipIf(skip)('a replayed, stale, forged or unknown request gets the same 401, and the service logs why', async () => {
    const path = '/v1/services';
    const auth = acme.authorization('GET', path, '');
    await acme.request('GET', path, undefined, auth);
    const same401 = { statusCode: 401, error: 'unauthorized', message: 'authentication failed' };
    const attempts: [string, () => Promise<unknown>][] = [
      ['replayed_nonce', () => acme.request('GET', path, undefined, auth)],
      ['stale_timestamp', () => acme.request('GET', path, undefined, signRequest(RsaPrivateKey.generate(2048), 'acme', 'GET', path, '', Date.now() - 10 * 60_000))],
      ['bad_signature', () => acme.request('GET', path, undefined, signRequest(RsaPrivateKey.generate(2048), 'acme', 'GET', path, ''))],
      ['unknown_client', () => acme.request('GET', path, undefined, signRequest(RsaPrivateKey.generate(2048), 'nobody', 'GET', path, ''))],
      ['malformed_header', () => acme.request('GET', path, undefined, 'Bearer abc')],
    ];
    for (const [reason, p] of attempts) {
      const e = await p().catch((x) => x);
      expect(e, reason).toBeInstanceOf(BackofficeHttpError);
      expect((e as BackofficeHttpError).status, reason).toBe(401);
      expect((e as BackofficeHttpError).message, reason).toBe(`GET ${path}: 401 unauthorized: authentication failed`);
      expect(logged.some((l) => l.reason === reason), reason).toBe(true);
    }
    const raw = await fetch(`${url}${path}`);
    expect(raw.status).toBe(401);
    expect(await raw.json()).toEqual(same401);
    // A body changed after signing is a bad signature too.
    const body = JSON.stringify({ service: serviceId, class: '2', card: { suite: 'rsa', serial: hex(card.credentials.serial) } });
    const tampered = await fetch(`${url}/v1/bookings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: acme.authorization('POST', '/v1/bookings', body) }, body: body.replace('"2"', '"1"') });
    expect(tampered.status).toBe(401);
  });

  it.skipIf(skip)('a terminal cannot book and a seller cannot read pending tickets (403); another seller\'s booking is not found (404)', async () => {
    const asTerminal = await kiosk.request('POST', '/v1/bookings', { service: serviceId, class: '2', card: { suite: 'rsa', serial: hex(card.credentials.serial) } }).catch((e) => e);
    expect(asTerminal).toMatchObject({ status: 403, error: 'forbidden' });
    expect(await acme.pending(card.credentials.serial).catch((e) => e)).toMatchObject({ status: 403 });
    const mine = await acme.book({ service: serviceId, class: '2', card: card.credentials });
    expect(await other.booking(mine.tid).catch((e) => e)).toMatchObject({ status: 404, error: 'not_found' });
    expect(await other.bill(mine.tid).catch((e) => e)).toMatchObject({ status: 404 });
    expect(await other.cancel(mine.tid).catch((e) => e)).toMatchObject({ status: 404 });
  });

  it.skipIf(skip)('cancelling a sealed booking frees its seat and bills the refund; a sold-out class is 409', async () => {
    const b = await acme.book({ service: serviceId, class: '2', card: card.credentials });
    expect((await acme.services())[0].classes[0].seatsLeft).toBe(0);
    expect(await acme.book({ service: serviceId, class: '2', card: card.credentials }).catch((e) => e)).toMatchObject({ status: 409, error: 'sold_out' });
    const c = await acme.cancel(b.tid);
    expect(c).toMatchObject({ status: 'cancelled', refund: { kind: 'refund', price: 55300 } });
    expect((await acme.services())[0].classes[0].seatsLeft).toBe(1);
    expect(await acme.book({ service: serviceId, class: '2', card: card.credentials })).toMatchObject({ status: 'sealed' });
  });

  it.skipIf(skip)('hostile bodies, queries and params get a 4xx with a reason, never a 500 or a stack', async () => {
    const serial = hex(card.credentials.serial);
    const bodies: unknown[] = [
      {},
      { service: '1', class: '2', card: { suite: 'rsa', serial } },
      { service: -1, class: '2', card: { suite: 'rsa', serial } },
      { service: 1e12, class: '2', card: { suite: 'rsa', serial } },
      { service: serviceId, class: 'x'.repeat(10_000), card: { suite: 'rsa', serial } },
      { service: serviceId, class: '2', card: { suite: 'rsa', serial: 'zz' } },
      { service: serviceId, class: '2', card: { suite: 'ecc', serial } },
      { service: serviceId, class: '2', card: { suite: 'rsa', serial, encryptionCertificate: '3082' } },
      { service: serviceId, class: '2', card: { suite: 'rsa', serial, encryptionCertificate: 'not hex' } },
      { service: serviceId, class: '2', card: { suite: 'rsa', serial }, extra: true },
      { service: serviceId, class: '2', card: { suite: 'rsa', serial }, __proto__: { admin: true } },
      { service: serviceId, class: '2', card: { suite: 'rsa', serial }, passenger: 'x'.repeat(33) },
      { service: 999999, class: '2', card: { suite: 'rsa', serial } },
      { service: serviceId, class: 'nope', card: { suite: 'rsa', serial } },
      [1, 2, 3],
      'a string',
      null,
      { service: serviceId, class: '2', card: { suite: 'rsa', serial: '00'.repeat(8) } },
      JSON.parse('{"service":1,"class":"2","card":{"suite":"rsa","serial":"' + serial + '"},"constructor":{"prototype":{"x":1}}}'),
    ];
    const answers: { status: number; text: string }[] = [];
    const nested = '{"a":'.repeat(5000) + '{}' + '}'.repeat(5000);
    for (const text of [...bodies.map((b) => JSON.stringify(b)), nested]) {
      const r = await fetch(`${url}/v1/bookings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: acme.authorization('POST', '/v1/bookings', text) }, body: text });
      answers.push({ status: r.status, text: await r.text() });
    }
    const raw = async (path: string, init: RequestInit, body = '') => {
      const r = await fetch(`${url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: acme.authorization(init.method ?? 'GET', path, body) }, body: body || undefined });
      return { status: r.status, text: await r.text() };
    };
    answers.push(await raw('/v1/bookings', { method: 'POST', headers: { 'content-type': 'application/json' } }, '{"service": 1,'));
    answers.push(await raw('/v1/bookings', { method: 'POST', headers: { 'content-type': 'text/plain' } }, 'hello'));
    answers.push(await raw('/v1/bookings', { method: 'POST', headers: { 'content-type': 'application/json' } }, 'x'.repeat(300 * 1024)));
    answers.push(await raw('/v1/services?date=2030-13-99', { method: 'GET' }));
    answers.push(await raw('/v1/services?date[]=1', { method: 'GET' }));
    answers.push(await raw(`/v1/bookings/${'x'.repeat(100)}`, { method: 'GET' }));
    answers.push(await raw('/v1/bookings/%00%ff', { method: 'GET' }));
    answers.push(await raw('/v1/nowhere', { method: 'GET' }));
    const asTerminal = async (path: string, body: unknown) => {
      const text = JSON.stringify(body);
      const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: kiosk.authorization('POST', path, text) }, body: text });
      return { status: r.status, text: await r.text() };
    };
    answers.push(await asTerminal('/v1/receipts', { receipt: 'B40100' }));
    answers.push(await asTerminal('/v1/receipts', { receipt: 'B4' + '00'.repeat(40) }));
    answers.push(await asTerminal('/v1/receipts', { receipt: 'B40100', transaction: { operator: 'CR' } }));
    answers.push(await asTerminal('/v1/terminal/loaded', { tid: 'nope', card: serial }));
    answers.push(await asTerminal('/v1/verify', { bill: { format: 'eticket-bill/1' } }));
    answers.push(await asTerminal('/v1/verify', {}));
    for (const [i, a] of answers.entries()) {
      expect(a.status, `answer ${i}: ${a.text}`).toBeGreaterThanOrEqual(400);
      expect(a.status, `answer ${i}: ${a.text}`).toBeLessThan(500);
      expect(a.text, `answer ${i}`).not.toMatch(/\bat .*\(|node_modules|\.ts:\d+/);
      const j = JSON.parse(a.text) as { statusCode: number; error: string; message: string };
      expect(j.statusCode, `answer ${i}`).toBe(a.status);
      expect(j.message.length, `answer ${i}`).toBeGreaterThan(3);
    }
    // Evidence that is well-formed JSON but not a genuine ticket gets a verdict (200, ok false) with the reason.
    const verdict = await asTerminal('/v1/verify', { ticket: { face: 'A100', verificationCode: 'A200' } });
    expect(verdict.status).toBe(200);
    expect(JSON.parse(verdict.text)).toMatchObject({ ok: false, kind: 'ticket', reason: expect.stringMatching(/ticket face/) });
    expect(logged.filter((l) => l.event === 'error')).toEqual([]);
    expect(fromHex(hex(card.credentials.serial))).toEqual(card.credentials.serial);
  });
});
