#!/usr/bin/env node
// `npm run build`: compiles the package (tsconfig.build.json) to dist/ with declarations, copies the files the
// compiled code reads or runs at run time (apdu-spec/protocol.json, the conformance vectors, the back office's SQL
// migrations, the PC/SC agent script) and drops stale outputs.
//
// Plain JavaScript on purpose: it runs before anything is compiled (npm install's `prepare`, vitest's
// globalSetup). Incremental: a build with nothing changed only re-checks (dist/.tsbuildinfo).

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

/** Files read at run time, relative to the module that reads them; copied to the same place under dist/. */
const ASSETS = [
  { dir: 'apdu-spec', match: (f) => f === 'protocol.json' },
  // host/transport/pcsc.ts forks ./pcsc-agent.cjs (plain CommonJS, run by node without loaders): the PC/SC agent.
  { dir: 'host/transport', match: (f) => f === 'pcsc-agent.cjs' },
  // backoffice/store/migrate.ts reads ../migrations/NNNN_name.sql: `eticket init` and `serve` create the store.
  { dir: 'backoffice/migrations', match: (f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f) },
  { dir: 'test-vectors', match: (f) => /^[a-z0-9]+-[a-z-]+\.json$/.test(f) },
  { dir: 'test-vectors/schema', match: (f) => f.endsWith('.json') },
];

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** A module deleted or moved in the source would otherwise live on in dist/ (and in the package). */
function dropStale() {
  if (!existsSync(dist)) return 0;
  let dropped = 0;
  for (const out of walk(dist)) {
    const rel = relative(dist, out);
    const m = /^(.*)\.(js|d\.ts)$/.exec(rel);
    if (!m) continue;
    if (!existsSync(join(root, `${m[1]}.ts`))) {
      rmSync(out);
      dropped++;
    }
  }
  // tsc keeps no record of a deleted output; forget the incremental state so that the next emit is whole.
  if (dropped) rmSync(join(dist, '.tsbuildinfo'), { force: true });
  return dropped;
}

/**
 * Two builds at once (a developer's `npm run build` while vitest's setup builds) would write the same files.
 * A directory is created atomically: whoever creates it builds; the other waits for it to go.
 */
function lock() {
  const dir = join(root, 'build', 'build.lock');
  mkdirSync(dirname(dir), { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      } catch {
        // Just created, pid not written yet: wait for it (unless its creator died before writing it).
      }
      const orphan = Number.isNaN(holder) && ageMs(dir) > 10_000;
      if ((Number.isInteger(holder) && !alive(holder)) || orphan) {
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`build: ${dir} held for 5 minutes by pid ${holder}; remove it if that process is gone`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
}

function ageMs(path) {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

function copyAssets() {
  let copied = 0;
  for (const { dir, match } of ASSETS) {
    const from = join(root, dir);
    const to = join(dist, dir);
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(from)) {
      if (!match(f)) continue;
      const src = join(from, f);
      const dst = join(to, f);
      if (existsSync(dst) && statSync(dst).mtimeMs >= statSync(src).mtimeMs && statSync(dst).size === statSync(src).size) continue;
      copyFileSync(src, dst);
      copied++;
    }
    // An asset renamed or deleted in the source must not live on in dist/: a stale migration would be applied.
    for (const f of readdirSync(to)) if (match(f) && !existsSync(join(from, f))) rmSync(join(to, f));
  }
  return copied;
}

const unlock = lock();
try {
  const t0 = Date.now();
  const dropped = dropStale();
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: tsc failed (exit ${r.status ?? r.signal})`);
    process.exitCode = 1;
  } else {
    const copied = copyAssets();
    if (!process.argv.includes('--quiet')) console.error(`build: dist/ up to date in ${((Date.now() - t0) / 1000).toFixed(1)} s (${dropped} stale output(s) dropped, ${copied} asset(s) copied)`);
  }
} finally {
  unlock();
}
