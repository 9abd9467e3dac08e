// Public entry of the SM9 module (GM/T 0044-2016 / GB/T 38635): identity-based signature, key
// encapsulation and encryption on the SM9 BN curve; bytes in, bytes out.

export {
  HID_SIGN, HID_KEY_EXCHANGE, HID_ENCRYPT, SIGNATURE_LENGTH,
  generateSignMasterKey, extractSignPrivateKey, sign, verify,
  generateEncMasterKey, extractEncPrivateKey, encapsulate, decapsulate, encrypt, decrypt,
  pairing, clearCaches, prepareSignMasterPublicKey, prepareEncMasterPublicKey, prepareEncPrivateKey,
  type MasterKeyPair,
} from './sm9.js';
export { H1, H2, kdf } from './hash.js';
export { N, p, t } from './fields.js';
export { b, P1_COORDS as P1, P2_COORDS as P2 } from './curves.js';
