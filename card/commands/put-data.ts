// PUT DATA (personalisation): the card's identity (SM9 suite; keys installed before it must be its keys) or
// the certificates of its two public keys (RSA suite; the card checks only that it holds a DER SEQUENCE).

import { CERTIFICATE_MAX, decodeIdentity, looksLikeCertificate, PUT_DATA_P2 } from '../../sdk/commands/put-data.js';
import { sm9Identity } from '../../sdk/crypto/sm9-suite.js';
import { SUITE, SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const putData: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  if (apdu.p2 === PUT_DATA_P2.IDENTITY) {
    if (s.suite !== SUITE.sm9) refuse(SW.CONDITIONS_NOT_SATISFIED);
    const identity = decodeIdentity(apdu.data);
    // Either order of personalisation is allowed, so keys installed first must match the identity now.
    if ([s.encKey, s.signKey].some((k) => k && sm9Identity(k.publicKey) !== identity)) refuse(SW.INCORRECT_DATA, 'identity of other keys');
    ctx.commit({ ...s, identity });
    return new Uint8Array(0);
  }
  if (!looksLikeCertificate(apdu.data)) refuse(SW.INCORRECT_DATA, 'not a DER certificate');
  // D6 travels inside VERIFY answers (P1 bit 2): its spec length bounds them (limits.maxResponseData).
  if (apdu.data.length > CERTIFICATE_MAX) refuse(SW.INCORRECT_DATA, `certificate over ${CERTIFICATE_MAX} bytes`);
  ctx.commit(apdu.p2 === PUT_DATA_P2.ENCRYPTION_CERTIFICATE ? { ...s, encCert: apdu.data.slice() } : { ...s, signCert: apdu.data.slice() });
  return new Uint8Array(0);
};
