// LOCK: ends personalisation for good (PERSONALIZING to OPERATIONAL) once the card holds its key pairs, an
// authority key and a terminal or diversified key; no data, no answer.

import { command } from '../spec.js';

export const LOCK = command('LOCK');
