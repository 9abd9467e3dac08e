// vitest globalSetup: builds dist/ (incremental) before any test runs, so that spawned-CLI tests, the bench
// test and the package test run the compiled code of this checkout, never a stale build.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const build = fileURLToPath(new URL('../tools/build.mjs', import.meta.url));
  execFileSync(process.execPath, [build], { stdio: ['ignore', 'inherit', 'inherit'] });
}
