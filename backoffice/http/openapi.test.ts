// docs/openapi.json is exactly what the route schemas generate (run `npm run openapi` after changing a route),
// and every route declares what it takes and what it answers.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from './app.js';

interface Operation {
  requestBody?: unknown;
  parameters?: { in: string; name: string }[];
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
  security?: unknown[];
}

describe('OpenAPI document', () => {
  it('docs/openapi.json is up to date (npm run openapi)', async () => {
    const doc = await openApiDocument();
    const file = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
    expect(file).toEqual(JSON.parse(JSON.stringify(doc)));
  });

  it('every route has reply schemas; POSTs a body schema; every /v1 route but health needs a signature', async () => {
    const doc = (await openApiDocument()) as { paths: Record<string, Record<string, Operation>> };
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
    expect(ops.map((o) => `${o.method.toUpperCase()} ${o.path}`).sort()).toEqual(
      ['GET /v1/health', 'GET /v1/services', 'POST /v1/bookings', 'GET /v1/bookings/{tid}', 'GET /v1/bookings/{tid}/sealed', 'GET /v1/bookings/{tid}/bill', 'POST /v1/bookings/{tid}/cancel', 'GET /v1/terminal/pending', 'POST /v1/terminal/loaded', 'POST /v1/terminal/authorization', 'POST /v1/receipts', 'GET /v1/keys', 'POST /v1/verify', 'POST /v1/tickets/{tid}/holder', 'POST /v1/journal', 'GET /v1/denylist', 'POST /v1/passes'].sort(),
    );
    for (const { path, method, op } of ops) {
      expect(op.responses['200']?.content?.['application/json']?.schema, `${method} ${path}`).toBeDefined();
      if (method === 'post') expect(op.requestBody, `${method} ${path}`).toBeDefined();
      if (path.includes('{tid}')) expect(op.parameters?.some((p) => p.in === 'path' && p.name === 'tid'), `${method} ${path}`).toBe(true);
      if (path !== '/v1/health') {
        expect(op.security, `${method} ${path}`).toEqual([{ etktSig: [] }]);
        expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['400', '401', '403']));
      }
    }
  });
});
