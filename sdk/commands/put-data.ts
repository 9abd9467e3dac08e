// PUT DATA (personalisation): the CA's certificates of the card's two public keys (RSA suite) and the
// card's identity (SM9 suite), by the tag in P2.

import { utf8 } from '../bytes.js';
import { textField } from '../fields.js';
import { command, T } from '../spec.js';
import { TlvError } from '../tlv.js';

export const PUT_DATA = command('PUT DATA');

/** P2: the data object written. */
export const PUT_DATA_P2 = { ENCRYPTION_CERTIFICATE: T.CARD_ENCRYPTION_CERTIFICATE, SIGNING_CERTIFICATE: T.CARD_SIGNING_CERTIFICATE, IDENTITY: T.CARD_IDENTITY } as const;

const IDENTITY_MAX = 64;
const DER_SEQUENCE = 0x30;
const CERTIFICATE_MIN = 16;
/** D5 / D6 at most this long (their spec length): D6 travels in VERIFY answers, whose size is bounded. */
export const CERTIFICATE_MAX = 2048;

export function encodeIdentity(identity: string): Uint8Array {
  return utf8(identity);
}

/** Card side: UTF-8 of at most 64 bytes; throws TlvError (6A80). */
export function decodeIdentity(data: Uint8Array): string {
  if (data.length > IDENTITY_MAX) throw new TlvError(`identity of ${data.length} bytes, at most ${IDENTITY_MAX}`);
  return textField(data, 'card identity');
}

/** Card side: a DER SEQUENCE of some length; the CA chain is the host's business, not the card's. */
export function looksLikeCertificate(data: Uint8Array): boolean {
  return data[0] === DER_SEQUENCE && data.length >= CERTIFICATE_MIN;
}
