// Authentication of API clients: every request is signed with the client's registered key (ETKT-SIG header:
// client id, timestamp, nonce, signature over method, path, body digest). Stale or replayed requests are
// refused; nonces live in the database, so every service process on it refuses the same replay.

import { getSuite } from '../../sdk/crypto/suites.js';
import { bodyDigest, parseAuthorization, requestSigningBytes } from '../../sdk/roles/request-signing.js';
import type { ClientRecord, Store } from '../store/store.js';

export type Role = 'seller' | 'terminal';

/** Why a request was refused, for the service's log only: the client learns nothing but 401. */
export type AuthFailure = 'no_header' | 'malformed_header' | 'unknown_client' | 'revoked_client' | 'stale_timestamp' | 'bad_signature' | 'replayed_nonce';

export type AuthResult = { ok: true; client: ClientRecord } | { ok: false; reason: AuthFailure };

export interface AuthOptions {
  /** How far a request's timestamp may be from the service's clock (ms); nonces are kept twice as long. */
  maxSkewMs: number;
  now?: () => number;
}

export async function authenticate(store: Store, method: string, path: string, header: string | undefined, body: string, options: AuthOptions): Promise<AuthResult> {
  if (!header) return { ok: false, reason: 'no_header' };
  const auth = parseAuthorization(header);
  if (!auth) return { ok: false, reason: 'malformed_header' };
  const now = (options.now ?? Date.now)();
  // The clock check comes first: a stale request costs no database lookup and no signature check.
  if (Math.abs(now - auth.timestamp) > options.maxSkewMs) return { ok: false, reason: 'stale_timestamp' };
  const client = await store.client(auth.clientId);
  if (!client) return { ok: false, reason: 'unknown_client' };
  if (client.status !== 'active') return { ok: false, reason: 'revoked_client' };
  const message = requestSigningBytes(method, path, auth.clientId, auth.timestamp, auth.nonce, bodyDigest(body));
  let valid = false;
  try {
    valid = getSuite(client.suite).verify(client.publicKey, message, auth.signature);
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'bad_signature' };
  // Only a correctly signed request spends a nonce: forged ones cannot fill the table.
  if (!(await store.useNonce(client.clientId, auth.nonce, new Date(now - 2 * options.maxSkewMs)))) return { ok: false, reason: 'replayed_nonce' };
  return { ok: true, client };
}
