// WRITE USAGE (patent 641-643): a terminal records a usage event (entry, exit, ...) on one ticket and the card
// answers with a receipt B4. Its fields, templates and authenticated bytes are shared with DELETE: usage-command.ts.

import { command, USAGE_EVENT } from '../spec.js';

export const WRITE_USAGE = command('WRITE USAGE');

/** The events a WRITE USAGE may carry (CB); DELETED exists only in deletion receipts. */
export const WRITABLE_EVENTS: readonly number[] = [USAGE_EVENT.ENTRY, USAGE_EVENT.TEMPORARY_EXIT, USAGE_EVENT.EXIT, USAGE_EVENT.PUNCH, USAGE_EVENT.PAPER_PRINTED];
