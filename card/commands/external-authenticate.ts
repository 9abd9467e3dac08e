// EXTERNAL AUTHENTICATE: the issuer signs the GET CHALLENGE challenge with an authority key the card holds (or
// one a root certified, A4); then GET DATA answers the identifying objects until SELECT, reset or power off.

import { decodeIssuerAuthorization, issuerAuthorizationMessage } from '../../sdk/commands/external-authenticate.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { resolveSigningKey } from '../../sdk/roles/key-chain.js';
import { SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';
import { chainRefusal, rootKeys, suiteName, wellFormedCertificate } from './keys.js';

/** Checks in order: format 6A80, challenge 6984, key or root 6A88, certificate 9101, signature 9106. */
export const externalAuthenticate: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  // The challenge is spent by any attempt, so a refused authorisation cannot be retried against it.
  const challenge = ctx.ram.challenge;
  ctx.ram.challenge = null;
  ctx.ram.issuerAuthenticated = false;
  const a = decodeIssuerAuthorization(apdu.data);
  if (a.certificate && !wellFormedCertificate(a.certificate)) refuse(SW.INCORRECT_DATA, 'malformed certificate');
  if (!challenge) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'no GET CHALLENGE challenge pending');
  const key = resolveSigningKey(suiteName(s), a.keyId, a.certificate, rootKeys(s), { now: s.cardTime });
  if (!key.ok) refuse(chainRefusal(key.failure), key.message);
  if (!suiteProvider(s.suite).suite.verify(key.publicKey, issuerAuthorizationMessage(challenge), a.signature)) refuse(SW.COMMAND_SIGNATURE_INVALID);
  ctx.ram.issuerAuthenticated = true;
  return new Uint8Array(0);
};
