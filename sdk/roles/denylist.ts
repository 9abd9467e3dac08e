// Denylists (hotlists): the cards gates must refuse offline, in versions. The back office signs each version it
// hands out, full or as a delta from an older one, with the authority's current signing key; gates check the
// signature against the key set they hold (root key, or a signing key its A4 certificate ties to the root).

import { concat, equal, fromHex, hex, utf8 } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { getSuite } from '../crypto/suites.js';
import { keyId, type Signer } from '../crypto/suite.js';
import type { SuiteName } from '../spec.js';
import { canonicalJson } from './bill.js';
import { verifyKeyCertificate } from './key-certificate.js';

export const DENYLIST_FORMAT = 'eticket-denylist/1';
export const DENYLIST_CONTEXT = utf8('ETKT DENY 1');

export interface DenylistFields {
  format: typeof DENYLIST_FORMAT;
  operator: string;
  /** The version this document brings the gate to. */
  version: number;
  /** full: `cards` is the whole list; delta: `added` and `removed` since version `base`. */
  kind: 'full' | 'delta';
  base?: number;
  cards?: string[];
  added?: string[];
  removed?: string[];
  /** Epoch seconds. */
  time: number;
  keyId: string;
  suite: SuiteName;
  /** The A4 certificate (hex) of the signing key when it is not the root key. */
  certificate?: string;
}

export interface DenylistDocument extends DenylistFields {
  signature: string;
}

const SERIAL = /^[0-9A-F]{16}$/;

function signedBytes(f: DenylistFields): Uint8Array {
  return concat(DENYLIST_CONTEXT, utf8(canonicalJson(f)));
}

function checkSerials(list: unknown, what: string): string[] | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || list.length > 1_000_000 || !list.every((s) => typeof s === 'string' && SERIAL.test(s))) throw new CryptoError(`denylist: ${what} must be a list of card serials (16 hex)`);
  return list as string[];
}

/** Sign a denylist version (full or delta). */
export function signDenylist(signer: Signer, f: Omit<DenylistFields, 'format' | 'keyId' | 'suite'>): DenylistDocument {
  if (!Number.isSafeInteger(f.version) || f.version < 0) throw new InvalidInputError('denylist version must be a whole number');
  const fields: DenylistFields = { format: DENYLIST_FORMAT, ...f, keyId: hex(keyId(signer.publicKey)), suite: signer.suite };
  return { ...fields, signature: hex(signer.sign(signedBytes(fields))) };
}

/** What a gate trusts for denylists: the authority's root key(s) it was installed with. */
export interface DenylistTrust {
  operator: string;
  suite: SuiteName;
  roots: Uint8Array[];
}

/**
 * Check a denylist document: well formed, for this operator, signed by a root key or by a signing key whose A4
 * certificate a root key signed (and that was valid at the document's time). Throws CryptoError.
 */
export function verifyDenylist(doc: unknown, trust: DenylistTrust): DenylistDocument {
  if (typeof doc !== 'object' || doc === null) throw new CryptoError('denylist: not an object');
  const d = doc as Record<string, unknown>;
  if (d.format !== DENYLIST_FORMAT) throw new CryptoError(`denylist: format is not ${DENYLIST_FORMAT}`);
  if (d.operator !== trust.operator) throw new CryptoError(`denylist of operator ${String(d.operator)}, this gate serves ${trust.operator}`);
  if (d.kind !== 'full' && d.kind !== 'delta') throw new CryptoError('denylist: kind is full or delta');
  for (const k of ['version', 'time'] as const) if (typeof d[k] !== 'number' || !Number.isSafeInteger(d[k]) || (d[k] as number) < 0) throw new CryptoError(`denylist: ${k} must be a whole number`);
  if (d.kind === 'delta' && (typeof d.base !== 'number' || !Number.isSafeInteger(d.base) || d.base < 0 || d.base > (d.version as number))) throw new CryptoError('denylist: a delta names a base version not after its own');
  if (typeof d.keyId !== 'string' || typeof d.signature !== 'string' || !/^([0-9A-F]{2})+$/.test(d.signature)) throw new CryptoError('denylist: key id or signature missing');
  const allowed = ['format', 'operator', 'version', 'kind', 'base', 'cards', 'added', 'removed', 'time', 'keyId', 'suite', 'certificate', 'signature'];
  for (const k of Object.keys(d)) if (!allowed.includes(k)) throw new CryptoError(`denylist: unknown field ${k}`);
  const fields: DenylistFields = {
    format: DENYLIST_FORMAT,
    operator: trust.operator,
    version: d.version as number,
    kind: d.kind,
    base: d.base as number | undefined,
    cards: checkSerials(d.cards, 'cards'),
    added: checkSerials(d.added, 'added'),
    removed: checkSerials(d.removed, 'removed'),
    time: d.time as number,
    keyId: d.keyId,
    suite: trust.suite,
    certificate: typeof d.certificate === 'string' ? d.certificate : undefined,
  };
  if (d.suite !== trust.suite) throw new CryptoError(`denylist signed in suite ${String(d.suite)}, this gate uses ${trust.suite}`);
  if (fields.kind === 'full' ? !fields.cards : !fields.added || !fields.removed) throw new CryptoError('denylist: a full list has cards, a delta added and removed');
  let key = trust.roots.find((r) => hex(keyId(r)) === fields.keyId);
  if (!key) {
    if (!fields.certificate) throw new CryptoError(`denylist signed by key ${fields.keyId}, which this gate does not know (and no certificate came with it)`);
    let cert;
    for (const root of trust.roots) {
      try {
        cert = verifyKeyCertificate(fromHex(fields.certificate), { suite: trust.suite, publicKey: root }, { at: fields.time, operator: trust.operator });
        break;
      } catch {
        // try the next root
      }
    }
    if (!cert || !equal(keyId(cert.publicKey), fromHex(fields.keyId))) throw new CryptoError(`denylist signing key ${fields.keyId} is not certified by a root key this gate trusts`);
    key = cert.publicKey;
  }
  if (!getSuite(trust.suite).verify(key, signedBytes(fields), fromHex(d.signature))) throw new CryptoError(`denylist version ${fields.version} does not verify with key ${fields.keyId}: forged or altered`);
  return { ...fields, signature: d.signature };
}
