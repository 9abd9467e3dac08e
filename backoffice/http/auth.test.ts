// Request authentication with an SM9 seller (an identity under the KGC, no certificate) and an RSA one: a
// signed request passes once; a replay, a stale or future timestamp, another body, a revoked client fail,
// each with its reason (which only the service's log sees).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hex } from '../../sdk/bytes.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { keyId, type Signer } from '../../sdk/crypto/suite.js';
import { KeyGenerationCentre } from '../../sdk/roles/kgc.js';
import { signRequest } from '../../sdk/roles/request-signing.js';
import { ENGINES } from '../../test/helpers/stores.js';
import type { Store } from '../store/store.js';
import { authenticate } from './auth.js';

const pglite = ENGINES.find((e) => e.engine === 'pglite')!;

describe('request authentication', () => {
  let store: Store;
  let dispose: () => Promise<void>;
  const kgc = KeyGenerationCentre.create();
  const sm9Seller: Signer = kgc.signer('eticket:seller:CR:sm9shop');
  const rsaSeller = RsaPrivateKey.generate(2048);

  beforeAll(async () => {
    ({ store, dispose } = await pglite.open());
    const pub = kgc.signingPublicKey('eticket:seller:CR:sm9shop');
    await store.addClient({ clientId: 'sm9shop', role: 'seller', name: 'SM9 shop', operator: 'CR', suite: 'sm9', publicKey: pub, identity: 'eticket:seller:CR:sm9shop', keyId: hex(keyId(pub)) });
    await store.addClient({ clientId: 'rsashop', role: 'seller', name: 'RSA shop', operator: 'CR', suite: 'rsa', publicKey: rsaSeller.publicKey, keyId: hex(keyId(rsaSeller.publicKey)) });
  });
  afterAll(async () => dispose?.());

  const opts = { maxSkewMs: 120_000 };

  it.each([
    ['sm9shop', sm9Seller],
    ['rsashop', rsaSeller],
  ] as const)('%s: a signed request passes once; replayed, stale, future, altered ones fail with their reason', async (id, signer) => {
    const body = '{"service":1}';
    const h = signRequest(signer, id, 'POST', '/v1/bookings', body);
    expect(await authenticate(store, 'POST', '/v1/bookings', h, body, opts)).toMatchObject({ ok: true, client: { clientId: id } });
    expect(await authenticate(store, 'POST', '/v1/bookings', h, body, opts)).toEqual({ ok: false, reason: 'replayed_nonce' });
    expect(await authenticate(store, 'POST', '/v1/bookings', signRequest(signer, id, 'POST', '/v1/bookings', body, Date.now() - 121_000), body, opts)).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(await authenticate(store, 'POST', '/v1/bookings', signRequest(signer, id, 'POST', '/v1/bookings', body, Date.now() + 121_000), body, opts)).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(await authenticate(store, 'POST', '/v1/bookings', signRequest(signer, id, 'POST', '/v1/bookings', body), '{"service":2}', opts)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(await authenticate(store, 'POST', '/v1/bookings/x', signRequest(signer, id, 'POST', '/v1/bookings', body), body, opts)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(await authenticate(store, 'GET', '/v1/keys', undefined, '', opts)).toEqual({ ok: false, reason: 'no_header' });
  });

  it('a revoked client is refused even with a good signature', async () => {
    await store.setClientStatus('rsashop', 'revoked');
    expect(await authenticate(store, 'GET', '/v1/keys', signRequest(rsaSeller, 'rsashop', 'GET', '/v1/keys', ''), '', opts)).toEqual({ ok: false, reason: 'revoked_client' });
  });
});
