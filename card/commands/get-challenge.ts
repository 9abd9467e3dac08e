// GET CHALLENGE: a fresh one-time card challenge for EXTERNAL AUTHENTICATE. It arms no WRITE USAGE or DELETE
// (those answer a VERIFY's view) and ends any shown view and sym session. Le other than 8 gives 6C08.

import { randomBytes } from 'node:crypto';
import { CHALLENGE_LENGTH } from '../../sdk/commands/get-challenge.js';
import { SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const getChallenge: CommandHandler = (ctx, apdu) => {
  if (apdu.ne !== undefined && apdu.ne !== CHALLENGE_LENGTH) refuse(SW.WRONG_LE_EXACT | CHALLENGE_LENGTH);
  ctx.ram.challenge = new Uint8Array(randomBytes(CHALLENGE_LENGTH));
  ctx.ram.shown = null;
  ctx.ram.session = null;
  return ctx.ram.challenge.slice();
};
