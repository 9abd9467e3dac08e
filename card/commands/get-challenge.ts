// GET CHALLENGE: a fresh one-time card challenge for the next WRITE USAGE / DELETE (gate mode pki); it ends
// any sym session. Le other than the challenge length is answered 6CXX with the right one.

import { randomBytes } from 'node:crypto';
import { CHALLENGE_LENGTH } from '../../sdk/commands/get-challenge.js';
import { SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const getChallenge: CommandHandler = (ctx, apdu) => {
  if (apdu.ne !== undefined && apdu.ne !== CHALLENGE_LENGTH) refuse(SW.WRONG_LE_EXACT | CHALLENGE_LENGTH);
  ctx.ram.challenge = new Uint8Array(randomBytes(CHALLENGE_LENGTH));
  ctx.ram.session = null;
  return ctx.ram.challenge.slice();
};
