// The API reference builds from the doc comments with typedoc's validation as errors (typedoc.json): an exported
// symbol, function, class, method or type without a doc comment fails `npm run docs`, and so this test.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const typedoc = (args: string[]) =>
  spawnSync(process.execPath, [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), ...args], { cwd: root, encoding: 'utf8', timeout: 540_000 });
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('API reference (npm run docs)', () => {
  it('builds with every exported symbol of the five entry points documented', () => {
    const r = typedoc(['--emit', 'none']);
    expect(plain(r.stdout + r.stderr)).not.toMatch(/warning|error/i);
    expect(r.status).toBe(0);
  }, 570_000);

  it('fails when an exported function has no doc comment (the check is real)', () => {
    const dir = mkdtempSync(join(root, 'tmp-docs-'));
    try {
      writeFileSync(join(dir, 'undocumented.ts'), '/** A module. @module */\nexport function undocumented(): number {\n  return 1;\n}\n');
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', files: ['undocumented.ts'], include: [] }));
      // The project's own typedoc options, on this one module.
      writeFileSync(join(dir, 'typedoc.json'), JSON.stringify({ extends: ['../typedoc.json'], entryPoints: ['undocumented.ts'], tsconfig: 'tsconfig.json' }));
      const r = typedoc(['--options', join(dir, 'typedoc.json'), '--emit', 'none']);
      expect(r.status).not.toBe(0);
      expect(plain(r.stdout + r.stderr)).toMatch(/undocumented \(CallSignature\), defined in .*undocumented\.ts, does not have any documentation/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 570_000);
});
