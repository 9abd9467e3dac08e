// SELECT by AID: selects the e-ticket application, clears the session state (shown view, challenge, sym session,
// issuer authentication), answers the FCI (P2=00, no serial) or nothing (P2=0C). A failed SELECT changes nothing.

import { equal } from '../../sdk/bytes.js';
import { encodeFci, SELECT_P2 } from '../../sdk/commands/select.js';
import { AID, SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const select: CommandHandler = (ctx, apdu) => {
  if (!equal(apdu.data, AID)) refuse(SW.FILE_NOT_FOUND);
  ctx.ram.selected = true;
  ctx.ram.challenge = null;
  ctx.ram.shown = null;
  ctx.ram.session = null;
  ctx.ram.issuerAuthenticated = false;
  ctx.ram.readCursor = null;
  return apdu.p2 === SELECT_P2.NO_FCI ? new Uint8Array(0) : encodeFci(ctx.state);
};
