// PUT KEY (personalisation): authority and terminal keys with their operator scopes (checked against their
// key ids), SM9 card private keys (checked against the card's identity), diversified checking keys (sym).

import { equal } from '../../sdk/bytes.js';
import { decodeDiversifiedKey, decodeKeyGrant, decodePrivateKey, PUT_KEY_P1 } from '../../sdk/commands/put-key.js';
import { checkTerminalKey } from '../../sdk/crypto/bundle.js';
import { sm9Identity } from '../../sdk/crypto/sm9-suite.js';
import { keyId } from '../../sdk/crypto/suite.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { LIMITS, SUITE, SW } from '../../sdk/spec.js';
import type { KeyEntry } from '../state.js';
import { refuse, type CardContext, type CommandHandler } from './context.js';

export const putKey: CommandHandler = (ctx, apdu) => {
  switch (apdu.p1) {
    case PUT_KEY_P1.AUTHORITY:
    case PUT_KEY_P1.TERMINAL:
      return putGrant(ctx, apdu.p1, apdu.data);
    case PUT_KEY_P1.DIVERSIFIED:
      return putDiversified(ctx, apdu.data);
    default:
      return putPrivate(ctx, apdu.p1, apdu.data);
  }
};

function putGrant(ctx: CardContext, p1: number, data: Uint8Array): Uint8Array {
  const s = ctx.state;
  const g = decodeKeyGrant(data);
  const authority = p1 === PUT_KEY_P1.AUTHORITY;
  const suite = suiteProvider(s.suite).suite;
  try {
    if (authority) suite.checkPublicKey(g.key);
    else checkTerminalKey(suite, g.key);
  } catch {
    refuse(SW.INCORRECT_DATA, 'not a public key of this suite');
  }
  if (!equal(keyId(g.key), g.keyId)) refuse(SW.INCORRECT_DATA, 'key id does not match the key');
  const list = authority ? s.authorityKeys : s.terminalKeys;
  if (list.some((k) => equal(k.id, g.keyId))) refuse(SW.ALREADY_EXISTS);
  if (list.length >= (authority ? LIMITS.maxAuthorityKeys : LIMITS.maxTerminalKeys)) refuse(SW.NOT_ENOUGH_MEMORY, 'key table full');
  const entry: KeyEntry = { id: g.keyId.slice(), scopes: g.scopes, key: g.key.slice() };
  ctx.commit(authority ? { ...s, authorityKeys: [...list, entry] } : { ...s, terminalKeys: [...list, entry] });
  return new Uint8Array(0);
}

/** A diversified key (and K_priv) cannot be checked against its id (the card never sees the master key): the issuer vouches. */
function putDiversified(ctx: CardContext, data: Uint8Array): Uint8Array {
  const s = ctx.state;
  const k = decodeDiversifiedKey(data);
  if (s.symKeys.some((e) => equal(e.id, k.keyId))) refuse(SW.ALREADY_EXISTS);
  if (s.symKeys.length >= LIMITS.maxSymmetricKeys) refuse(SW.NOT_ENOUGH_MEMORY, 'key table full');
  ctx.commit({ ...s, symKeys: [...s.symKeys, { id: k.keyId.slice(), operator: k.operator, key: k.key.slice(), privacyKey: k.privacyKey.slice() }] });
  return new Uint8Array(0);
}

/** P1 03 / 04: SM9 private keys extracted by the key generation centre. */
function putPrivate(ctx: CardContext, p1: number, data: Uint8Array): Uint8Array {
  const s = ctx.state;
  if (s.suite !== SUITE.sm9) refuse(SW.CONDITIONS_NOT_SATISFIED, 'RSA card keys are generated on the card');
  const priv = decodePrivateKey(data);
  const provider = suiteProvider(s.suite);
  let pub: Uint8Array;
  try {
    pub = p1 === PUT_KEY_P1.CARD_ENCRYPTION_PRIVATE ? provider.decrypter(priv).publicKey : provider.signer(priv).publicKey;
  } catch {
    return refuse(SW.INCORRECT_DATA, 'not a private key of this suite');
  }
  // apdu-spec 2.1: the key must belong to this card's identity, else the card would seal and sign as another card.
  if (s.identity !== undefined && sm9Identity(pub) !== s.identity) refuse(SW.INCORRECT_DATA, 'key of another identity');
  const pair = { privateKey: priv.slice(), publicKey: pub };
  ctx.commit(p1 === PUT_KEY_P1.CARD_ENCRYPTION_PRIVATE ? { ...s, encKey: pair } : { ...s, signKey: pair });
  return new Uint8Array(0);
}
