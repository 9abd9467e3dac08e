// EXTERNAL AUTHENTICATE: the issuer (an authority key the card holds, or a key one of them certified) signs
// the card's GET CHALLENGE; the card then answers GET DATA of its identifying objects until SELECT or reset.

import { concat } from '../bytes.js';
import { decodeSequenceField, specField } from '../fields.js';
import { command, T } from '../spec.js';
import { SIGNATURE_CONTEXT } from '../ticket.js';
import { TlvError, TlvMap, tlv } from '../tlv.js';

export const EXTERNAL_AUTHENTICATE = command('EXTERNAL AUTHENTICATE');

/** The issuer's authorisation { C1 key id, [A4 certificate of that key], 9E signature } (apdu-spec README 3.7). */
export interface IssuerAuthorization {
  keyId: Uint8Array;
  /** A4 as encoded, when the key is not a root key the card holds. */
  certificate?: Uint8Array;
  signature: Uint8Array;
}

/** What the issuer signs: "ETKT ISSUER 1" ‖ RC, the card's challenge (nothing else: the card has not said who it is). */
export function issuerAuthorizationMessage(cardChallenge: Uint8Array): Uint8Array {
  return concat(SIGNATURE_CONTEXT.ISSUER, cardChallenge);
}

/** The EXTERNAL AUTHENTICATE data: C1, A4 when present, 9E. */
export function encodeIssuerAuthorization(a: IssuerAuthorization): Uint8Array {
  return concat(tlv(T.KEY_ID, a.keyId), a.certificate ?? new Uint8Array(0), tlv(T.SIGNATURE, a.signature));
}

const KEY_ID = specField('keyId', 'KEY_ID');
const SIGNATURE = specField('signature', 'SIGNATURE');

/** Card side: C1, optional A4, 9E, in this order and nothing else; throws TlvError (6A80). */
export function decodeIssuerAuthorization(data: Uint8Array): IssuerAuthorization {
  const m = TlvMap.parse(data, { allowed: [T.KEY_ID, T.KEY_CERTIFICATE, T.SIGNATURE] });
  const tags = m.items.map((i) => i.tag);
  const expected = m.has(T.KEY_CERTIFICATE) ? [T.KEY_ID, T.KEY_CERTIFICATE, T.SIGNATURE] : [T.KEY_ID, T.SIGNATURE];
  if (tags.join() !== expected.join()) throw new TlvError('issuer authorisation: C1, [A4], 9E in this order');
  const cert = m.get(T.KEY_CERTIFICATE);
  return {
    keyId: decodeSequenceField(KEY_ID, m.require(T.KEY_ID)) as Uint8Array,
    ...(cert ? { certificate: tlv(T.KEY_CERTIFICATE, cert) } : {}),
    signature: decodeSequenceField(SIGNATURE, m.require(T.SIGNATURE)) as Uint8Array,
  };
}

