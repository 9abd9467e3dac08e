// DELETE (patent 651-653): a terminal voids a ticket; the card frees its space, keeps a tombstone and answers
// with a deletion receipt B4. Same fields as WRITE USAGE without CB: usage-command.ts.

import { command, USAGE_EVENT } from '../spec.js';

export const DELETE = command('DELETE');

/** The event a deletion receipt names (CB = FF); a DELETE command carries no CB. */
export const DELETION_EVENT = USAGE_EVENT.DELETED;
