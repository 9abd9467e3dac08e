// Documentation that cannot rot: the README's TypeScript sample is extracted and executed against the built
// package (its `eticket` imports resolve to this package's own exports, i.e. dist/; test/package.test.ts runs it
// again from the packed and installed tarball), and the two set-up commands it gives are the ones package.json
// and .ci/run actually use.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const readme = readFileSync(join(root, 'README.md'), 'utf8');

describe('README', () => {
  it('the gate-vendor sample imports the package, not repository paths', () => {
    const sample = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const specifiers = [...sample.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(specifiers.length).toBeGreaterThan(0);
    for (const s of specifiers) expect(s, s).toMatch(/^eticket(\/(pcsc|emulator|testing|vectors))?$/);
  });

  it('the gate-vendor sample runs and prints PASS and the refusal it promises', () => {
    const sample = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(sample).toBeTruthy();
    // Inside the checkout, so that `eticket` resolves to this package itself (package.json "exports").
    const dir = mkdtempSync(join(root, 'tmp-readme-'));
    try {
      const file = join(dir, 'sample.mts');
      writeFileSync(file, sample!);
      const out = execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      expect(out).toMatch(/^PASS 1$/m);
      expect(out).toMatch(/^LOAD 6a89 ALREADY_EXISTS$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the demo and test commands that package.json defines and .ci/run runs', () => {
    expect(readme).toContain('npm install && npm run demo');
    expect(readme).toContain('npm test');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.scripts.demo).toBeTruthy();
    expect(pkg.scripts.test).toBe('vitest run');
    expect(readFileSync(join(root, '.ci/run'), 'utf8')).toMatch(/npm test/);
  });
});
