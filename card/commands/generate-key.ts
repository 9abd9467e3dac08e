// GENERATE KEY (RSA suite, personalisation): a new card key pair, generated here and never exported;
// a second GENERATE KEY replaces the pair and drops its certificate.

import { GENERATE_KEY_P1, rsaBitsOf } from '../../sdk/commands/generate-key.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { SUITE, SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const generateKey: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  if (s.suite !== SUITE.rsa) refuse(SW.CONDITIONS_NOT_SATISFIED, 'SM9 keys come from the KGC (PUT KEY)');
  const key = RsaPrivateKey.generate(rsaBitsOf(apdu.p2));
  const pair = { privateKey: key.toPkcs8(), publicKey: key.publicKey };
  ctx.commit(apdu.p1 === GENERATE_KEY_P1.ENCRYPTION ? { ...s, encKey: pair, encCert: undefined } : { ...s, signKey: pair, signCert: undefined });
  return key.publicKey;
};
