// WRITE USAGE (patent 641-643) on the card: shared with DELETE in usage.ts (challenge or session, signature or
// MAC, counter, state machine, receipt); this module is where a reader looks for it by name.

import { usageHandler } from './usage.js';

export const writeUsage = usageHandler('WRITE USAGE');
