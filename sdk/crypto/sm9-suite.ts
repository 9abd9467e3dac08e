// The SM9 suite (identity-based, GM/T 0044-2016): TF_V, terminal commands and receipts are SM9
// signatures (hid 01); envelopes use the SM9 KEM (hid 03). Public keys are identity + master key.

import { fromUtf8, utf8 } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { SUITE } from '../spec.js';
import { TlvMap, tlv } from '../tlv.js';
import { concat } from '../bytes.js';
import * as sm9 from './sm9/index.js';
import type { CryptoSuite, Decrypter, Signer, SuiteProvider } from './suite.js';

const ID = 0x80;
const SIGN_MPK = 0x81;
const ENC_MPK = 0x82;
const SIGN_KEY = 0x83;
const ENC_KEY = 0x84;
export const KEM_KEY_LENGTH = 16;

/** Public encodings: { 80 identity, 81 sign master public key } or { 80 identity, 82 enc master public key }. */
export function sm9SigningPublicKey(identity: string, signMasterPublicKey: Uint8Array): Uint8Array {
  return concat(tlv(ID, utf8(identity)), tlv(SIGN_MPK, signMasterPublicKey));
}

export function sm9EncryptionPublicKey(identity: string, encMasterPublicKey: Uint8Array): Uint8Array {
  return concat(tlv(ID, utf8(identity)), tlv(ENC_MPK, encMasterPublicKey));
}

/** Private encodings carry identity and master public key too, so a key is usable on its own. */
export function sm9SignerEncoding(identity: string, signMasterPublicKey: Uint8Array, userKey: Uint8Array): Uint8Array {
  return concat(tlv(ID, utf8(identity)), tlv(SIGN_MPK, signMasterPublicKey), tlv(SIGN_KEY, userKey));
}

export function sm9DecrypterEncoding(identity: string, encMasterPublicKey: Uint8Array, userKey: Uint8Array): Uint8Array {
  return concat(tlv(ID, utf8(identity)), tlv(ENC_MPK, encMasterPublicKey), tlv(ENC_KEY, userKey));
}

interface Decoded {
  identity: Uint8Array;
  signMpk?: Uint8Array;
  encMpk?: Uint8Array;
  signKey?: Uint8Array;
  encKey?: Uint8Array;
}

function decode(bytes: Uint8Array, what: string): Decoded {
  try {
    const m = TlvMap.parse(bytes, { allowed: [ID, SIGN_MPK, ENC_MPK, SIGN_KEY, ENC_KEY] });
    const identity = m.bytes(ID, 1, 64, 'identity');
    fromUtf8(identity);
    return { identity, signMpk: m.get(SIGN_MPK), encMpk: m.get(ENC_MPK), signKey: m.get(SIGN_KEY), encKey: m.get(ENC_KEY) };
  } catch (e) {
    throw new InvalidInputError(`not an SM9 ${what} encoding: ${(e as Error).message}`, { cause: e });
  }
}

class Sm9Signer implements Signer {
  readonly suite = 'sm9' as const;
  readonly publicKey: Uint8Array;
  private readonly key: Uint8Array;
  private readonly mpk: Uint8Array;

  constructor(encoding: Uint8Array) {
    const d = decode(encoding, 'signing key');
    if (!d.signMpk || !d.signKey || d.encMpk || d.encKey) throw new InvalidInputError('SM9 signing key needs exactly identity, sign master public key and user key');
    sm9.prepareSignMasterPublicKey(d.signMpk); // validates the point (on curve, in the subgroup)
    this.key = d.signKey;
    this.mpk = d.signMpk;
    this.publicKey = concat(tlv(ID, d.identity), tlv(SIGN_MPK, d.signMpk));
    // A user key that does not match the identity would sign garbage: check once with a test signature.
    const probe = utf8('eticket sm9 key check');
    if (!sm9.verify(d.signMpk, d.identity, probe, sm9.sign(this.key, this.mpk, probe))) throw new InvalidInputError('SM9 signing key does not belong to its identity');
  }

  sign(message: Uint8Array): Uint8Array {
    return sm9.sign(this.key, this.mpk, message);
  }
}

class Sm9Decrypter implements Decrypter {
  readonly suite = 'sm9' as const;
  readonly publicKey: Uint8Array;
  private readonly key: Uint8Array;
  private readonly identity: Uint8Array;

  constructor(encoding: Uint8Array) {
    const d = decode(encoding, 'decryption key');
    if (!d.encMpk || !d.encKey || d.signMpk || d.signKey) throw new InvalidInputError('SM9 decryption key needs exactly identity, enc master public key and user key');
    sm9.prepareEncMasterPublicKey(d.encMpk);
    sm9.prepareEncPrivateKey(d.encKey);
    this.key = d.encKey;
    this.identity = d.identity;
    this.publicKey = concat(tlv(ID, d.identity), tlv(ENC_MPK, d.encMpk));
    const { key, encapsulation } = sm9.encapsulate(d.encMpk, d.identity, KEM_KEY_LENGTH);
    let back: Uint8Array | undefined;
    try {
      back = sm9.decapsulate(this.key, this.identity, encapsulation, KEM_KEY_LENGTH);
    } catch {
      back = undefined;
    }
    if (!back || Buffer.compare(Buffer.from(back), Buffer.from(key)) !== 0) throw new InvalidInputError('SM9 decryption key does not belong to its identity');
  }

  decapsulate(encapsulation: Uint8Array): Uint8Array {
    try {
      return sm9.decapsulate(this.key, this.identity, encapsulation, KEM_KEY_LENGTH);
    } catch (e) {
      throw new CryptoError('SM9 decapsulation failed', { cause: e });
    }
  }
}

export const sm9Suite: CryptoSuite = {
  name: 'sm9',
  id: SUITE.sm9,
  verify(publicKey, message, signature) {
    const d = decode(publicKey, 'public key');
    if (!d.signMpk) throw new InvalidInputError('SM9 public key has no sign master public key');
    if (signature.length !== sm9.SIGNATURE_LENGTH) return false;
    try {
      return sm9.verify(d.signMpk, d.identity, message, signature);
    } catch (e) {
      if (e instanceof InvalidInputError) return false;
      throw e;
    }
  },
  encapsulate(publicKey) {
    const d = decode(publicKey, 'public key');
    if (!d.encMpk) throw new InvalidInputError('SM9 public key has no encryption master public key');
    return sm9.encapsulate(d.encMpk, d.identity, KEM_KEY_LENGTH);
  },
  checkPublicKey(publicKey) {
    const d = decode(publicKey, 'public key');
    if (d.signKey || d.encKey) throw new InvalidInputError('a public key must not carry a private key');
    if (!!d.signMpk === !!d.encMpk) throw new InvalidInputError('an SM9 public key has exactly one master public key');
    if (d.signMpk) sm9.prepareSignMasterPublicKey(d.signMpk);
    if (d.encMpk) sm9.prepareEncMasterPublicKey(d.encMpk);
  },
};

export const sm9Provider: SuiteProvider = {
  suite: sm9Suite,
  signer: (k) => new Sm9Signer(k),
  decrypter: (k) => new Sm9Decrypter(k),
};

/** Identity named in an SM9 public key encoding. */
export function sm9Identity(publicKey: Uint8Array): string {
  return fromUtf8(decode(publicKey, 'public key').identity);
}
