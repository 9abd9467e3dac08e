// The card's dispatch table: one handler per spec command name. GET RESPONSE is not here: it is part of the
// ISO/IEC 7816-4 framing in card/applet.ts, which looks every other command up in this table.

import type { CommandHandler } from './context.js';
import { deleteTicket } from './delete.js';
import { externalAuthenticate } from './external-authenticate.js';
import { generateKey } from './generate-key.js';
import { getChallenge } from './get-challenge.js';
import { getData } from './get-data.js';
import { load } from './load.js';
import { lock } from './lock.js';
import { putData } from './put-data.js';
import { putKey } from './put-key.js';
import { read } from './read.js';
import { select } from './select.js';
import { verify } from './verify.js';
import { writeUsage } from './write-usage.js';

export const HANDLERS: Readonly<Record<string, CommandHandler>> = {
  SELECT: select,
  'GET CHALLENGE': getChallenge,
  'EXTERNAL AUTHENTICATE': externalAuthenticate,
  'GET DATA': getData,
  'GENERATE KEY': generateKey,
  'PUT KEY': putKey,
  'PUT DATA': putData,
  LOCK: lock,
  LOAD: load,
  READ: read,
  VERIFY: verify,
  'WRITE USAGE': writeUsage,
  DELETE: deleteTicket,
};
