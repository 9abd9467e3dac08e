// Writes docs/openapi.json: the back office's OpenAPI document, generated from the route schemas
// (backoffice/http/app.ts). `npm run openapi`; backoffice/http/openapi.test.ts fails when it is stale.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../backoffice/http/app.ts';

const out = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));
writeFileSync(out, JSON.stringify(await openApiDocument(), null, 2) + '\n');
console.log(`${out} written`);
