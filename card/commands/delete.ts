// DELETE (patent 651-653) on the card: voids the ticket, frees its space and leaves a tombstone (usage.ts, shared
// with WRITE USAGE); the deletion receipt is what lets the back office re-issue the ticket elsewhere.

import { usageHandler } from './usage.js';

export const deleteTicket = usageHandler('DELETE');
