// Vitest global setup: one empty PGlite data directory (initdb only, ~10 s) made once per machine and copied
// by every test that needs a fresh embedded store (ETICKET_PGLITE_TEMPLATE), spawned CLI processes included.

import { pglitePrepareTemplate } from '../testing/pglite-template.js';

export default async function setup(): Promise<void> {
  process.env.ETICKET_PGLITE_TEMPLATE = await pglitePrepareTemplate();
}
