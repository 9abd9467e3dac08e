// Signed API requests (docs/backoffice.md "Authentication"): a client signs method, path, its id, a timestamp,
// a nonce and the body's digest with its registered key; the service checks the signature, refuses a stale
// timestamp and a nonce seen before. Shared by the service (backoffice/) and its clients (host/).

import { createHash, randomBytes } from 'node:crypto';
import { utf8 } from '../bytes.js';
import type { Signer } from '../crypto/suite.js';

export const REQUEST_CONTEXT = 'ETKT REQ 1';
export const AUTH_SCHEME = 'ETKT-SIG';

export interface RequestAuth {
  clientId: string;
  /** Milliseconds since 1970 (the client's clock). */
  timestamp: number;
  /** 16 random bytes, hex. */
  nonce: string;
  signature: Uint8Array;
}

export function bodyDigest(body: Uint8Array | string): string {
  return createHash('sha256').update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body).digest('hex');
}

/** What the client signs: every part that gives the request its meaning, one per line. */
export function requestSigningBytes(method: string, path: string, clientId: string, timestamp: number, nonce: string, digest: string): Uint8Array {
  return utf8([REQUEST_CONTEXT, method.toUpperCase(), path, clientId, String(timestamp), nonce, digest].join('\n'));
}

/** The Authorization header value for one request. */
export function signRequest(signer: Signer, clientId: string, method: string, path: string, body: string, now = Date.now()): string {
  const nonce = randomBytes(16).toString('hex');
  const sig = signer.sign(requestSigningBytes(method, path, clientId, now, nonce, bodyDigest(body)));
  return `${AUTH_SCHEME} client=${clientId}, ts=${now}, nonce=${nonce}, sig=${Buffer.from(sig).toString('base64')}`;
}

/** Parse an Authorization header; undefined when it is not a well-formed ETKT-SIG header. */
export function parseAuthorization(header: string | undefined): RequestAuth | undefined {
  if (!header || header.length > 4096) return undefined;
  const m = /^ETKT-SIG client=([A-Za-z0-9_.-]{1,32}), ts=(\d{1,15}), nonce=([0-9a-f]{32}), sig=([A-Za-z0-9+/]{1,2048}={0,2})$/.exec(header);
  if (!m) return undefined;
  return { clientId: m[1], timestamp: Number(m[2]), nonce: m[3], signature: new Uint8Array(Buffer.from(m[4], 'base64')) };
}
