// Test helper: installs a packed eticket tarball into an empty project without the network, as a vendor's build
// would install it. npm resolves version ranges from registry metadata that the local cache need not hold, so the
// project gets a lockfile naming the exact dependencies this checkout's lockfile pins (with their integrity):
// `npm ci --offline` then takes every tarball from the local npm cache, which `npm ci` here has filled.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface LockEntry {
  version: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  optional?: boolean;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  [k: string]: unknown;
}

/**
 * Install `tarball` into `project` (an empty directory) offline. The optional native PC/SC binding is not
 * compiled again: when this checkout has a built one, the project links it (what an install with a C++
 * toolchain would have produced). Returns the npm output.
 */
export function installOffline(root: string, tarball: string, project: string): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const spec = `file:${tarball}`;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const packages: Record<string, LockEntry> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { eticket: spec } } as unknown as LockEntry,
    'node_modules/eticket': {
      version: pkg.version,
      resolved: spec,
      integrity,
      license: pkg.license,
      dependencies: pkg.dependencies,
      optionalDependencies: pkg.optionalDependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  // The dependency closure, laid out as in this checkout's lockfile: mostly hoisted, but a package that needs
  // another version of a dependency has it nested (node_modules/ajv/node_modules/fast-uri), and Node's lookup
  // (own node_modules first, then each enclosing one up to the top) decides which copy a package gets.
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ; ) {
      const key = base ? `${base}/node_modules/${name}` : `node_modules/${name}`;
      if (lock.packages[key]) return key;
      if (!base) return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  const todo: [string, string, boolean][] = [
    ...Object.keys(pkg.dependencies ?? {}).map((n): [string, string, boolean] => ['', n, false]),
    ...Object.keys(pkg.optionalDependencies ?? {}).map((n): [string, string, boolean] => ['', n, true]),
  ];
  while (todo.length) {
    const [from, name, optional] = todo.pop()!;
    const key = resolve(from, name);
    if (!key) throw new Error(`package-lock.json has no ${name} for ${from || 'the root'}: run npm install in the checkout`);
    if (packages[key] && (optional || !packages[key].optional)) continue;
    const entry = lock.packages[key];
    const { dev: _d, devOptional: _o, peer: _p, optional: _x, ...kept } = entry;
    packages[key] = optional ? { ...kept, optional: true } : kept;
    for (const d of Object.keys(entry.dependencies ?? {})) todo.push([key, d, optional]);
    for (const d of Object.keys(entry.optionalDependencies ?? {})) todo.push([key, d, true]);
  }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { eticket: spec } }, null, 2));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));
  const out = execFileSync('npm', ['ci', '--offline', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: project,
    encoding: 'utf8',
    env: npmEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const binding = join(root, 'node_modules', 'pcsclite');
  if (existsSync(join(binding, 'build', 'Release'))) symlinkSync(binding, join(project, 'node_modules', 'pcsclite'), 'dir');
  return `${basename(tarball)}: ${out.trim()}`;
}

/**
 * The environment for a nested npm: under `npm test` the parent npm exports its own project's settings
 * (npm_package_*, npm_config_local_prefix, ...), which must not steer an install into another project.
 * The cache and the user's npmrc stay: the cache is where the offline install takes its tarballs from.
 */
export function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_nodedir']);
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || keep.has(k.toLowerCase())));
}
