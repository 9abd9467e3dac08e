// LOCK: ends personalisation for good, once the card holds both key pairs (or SM9 keys and identity), an
// authority key, and a terminal key or a diversified checking key.

import { LIFECYCLE, SUITE, SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const lock: CommandHandler = (ctx) => {
  const s = ctx.state;
  const complete = s.encKey && s.signKey && s.authorityKeys.length > 0 && (s.terminalKeys.length > 0 || s.symKeys.length > 0) && (s.suite !== SUITE.sm9 || s.identity !== undefined);
  if (!complete) refuse(SW.CONDITIONS_NOT_SATISFIED, 'personalisation incomplete');
  ctx.commit({ ...s, lifecycle: LIFECYCLE.OPERATIONAL });
  return new Uint8Array(0);
};
