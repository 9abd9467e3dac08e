// Test helper process: takes a FileLock N times and, inside it, increments a counter file with a slow
// read-modify-write, so that two holders at once would lose increments (sdk/file-lock.test.ts).

import { readFileSync, writeFileSync } from 'node:fs';
import { FileLock, LockHeldError } from '../../sdk/file-lock.js';

const [lockPath, counterPath, rounds] = process.argv.slice(2);
let done = 0;
while (done < Number(rounds)) {
  let lock: FileLock;
  try {
    lock = await FileLock.acquire(lockPath, 'counter', { waitMs: 30_000 });
  } catch (e) {
    if (e instanceof LockHeldError) continue;
    throw e;
  }
  const n = Number(readFileSync(counterPath, 'utf8'));
  await new Promise((r) => setTimeout(r, 1));
  writeFileSync(counterPath, String(n + 1));
  lock.release();
  done++;
}
