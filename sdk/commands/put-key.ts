// PUT KEY (personalisation): the authority key (key 6), terminal key bundles (key 4) with their operator
// scopes, the SM9 card private keys from the KGC, and the diversified checking keys of gate mode sym.

import { concat, utf8 } from '../bytes.js';
import { decodeSequence, decodeSequenceField, specField } from '../fields.js';
import { command, T } from '../spec.js';
import { TlvError, TlvMap, tlv } from '../tlv.js';

export const PUT_KEY = command('PUT KEY');

/** P1: which key the data carries. */
export const PUT_KEY_P1 = { AUTHORITY: 0x01, TERMINAL: 0x02, CARD_ENCRYPTION_PRIVATE: 0x03, CARD_SIGNING_PRIVATE: 0x04, DIVERSIFIED: 0x05 } as const;

/** The operator scope that covers every operator. */
export const ANY_OPERATOR = '*';

/** P1=01/02: { C1 key id, C9 operator scope (one or more), D0 public key (or terminal key bundle) }. */
export interface KeyGrantObject {
  keyId: Uint8Array;
  scopes: string[];
  key: Uint8Array;
}

const KEY_ID = specField('keyId', 'KEY_ID');
const SCOPE = specField('scope', 'OPERATOR_SCOPE');
const KEY_MATERIAL = specField('key', 'KEY_MATERIAL');

export function encodeKeyGrant(g: KeyGrantObject): Uint8Array {
  return concat(tlv(T.KEY_ID, g.keyId), ...g.scopes.map((s) => tlv(T.OPERATOR_SCOPE, utf8(s))), tlv(T.KEY_MATERIAL, g.key));
}

/** Card side; throws TlvError (6A80). The key id is not checked against the key here: that needs the suite. */
export function decodeKeyGrant(data: Uint8Array): KeyGrantObject {
  const m = TlvMap.parse(data, { allowed: [T.KEY_ID, T.OPERATOR_SCOPE, T.KEY_MATERIAL], repeatable: [T.OPERATOR_SCOPE] });
  const keyId = decodeSequenceField(KEY_ID, m.require(T.KEY_ID, 'key id')) as Uint8Array;
  const key = decodeSequenceField(KEY_MATERIAL, m.require(T.KEY_MATERIAL, 'key')) as Uint8Array;
  const scopes = m.all(T.OPERATOR_SCOPE).map((v) => decodeSequenceField(SCOPE, v) as string);
  if (scopes.length === 0) throw new TlvError('at least one operator scope is required');
  return { keyId, scopes, key };
}

/** P1=05: { C1 master key id, C9 its one operator, D0 K_card, DF25 K_priv }, in this order. */
export interface DiversifiedKeyObject {
  keyId: Uint8Array;
  operator: string;
  /** K_card = KDF(MK, "ETKT CARD KEY", serial ‖ operator): this card's own. */
  key: Uint8Array;
  /** K_priv = KDF(MK, "ETKT PRIVACY KEY", operator): the operator's, masks the serial in sym VERIFY answers. */
  privacyKey: Uint8Array;
}

const DIVERSIFIED_FIELDS = [KEY_ID, specField('operator', 'OPERATOR_SCOPE'), KEY_MATERIAL, specField('privacyKey', 'PRIVACY_KEY')] as const;
const AES_128 = 16;

export function encodeDiversifiedKey(k: DiversifiedKeyObject): Uint8Array {
  return concat(tlv(T.KEY_ID, k.keyId), tlv(T.OPERATOR_SCOPE, utf8(k.operator)), tlv(T.KEY_MATERIAL, k.key), tlv(T.PRIVACY_KEY, k.privacyKey));
}

export function decodeDiversifiedKey(data: Uint8Array): DiversifiedKeyObject {
  const { values } = decodeSequence(DIVERSIFIED_FIELDS, data, 'diversified key (C1, C9, D0, DF25)');
  const operator = values.operator as string;
  if (operator === ANY_OPERATOR) throw new TlvError('a diversified key belongs to one named operator');
  const key = values.key as Uint8Array;
  if (key.length !== AES_128) throw new TlvError(`a diversified key is AES-128 (${AES_128} bytes), got ${key.length}`);
  return { keyId: values.keyId as Uint8Array, operator, key, privacyKey: values.privacyKey as Uint8Array };
}

/** P1=03/04 (SM9 suite): { D0 private key } as the KGC extracted it. */
export function encodePrivateKey(key: Uint8Array): Uint8Array {
  return tlv(T.KEY_MATERIAL, key);
}

export function decodePrivateKey(data: Uint8Array): Uint8Array {
  const m = TlvMap.parse(data, { allowed: [T.KEY_MATERIAL] });
  return decodeSequenceField(KEY_MATERIAL, m.require(T.KEY_MATERIAL, 'private key')) as Uint8Array;
}
