// The layering of DESIGN.md §5 read from the import graph of every .ts file, so the structure cannot rot
// silently: card and host apart, sdk self-contained, no test helpers in product code, no import cycles.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(new URL(import.meta.url).pathname), '..');
const SKIP = new Set(['node_modules', 'dist', '.git', 'build']);

/** Repository-relative paths (with '/') of every .ts file. */
function sourceFiles(dir = ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (SKIP.has(e.name) || e.name.startsWith('tmp-')) return [];
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [relative(ROOT, p).split('\\').join('/')] : [];
  });
}

/** Import, export-from, dynamic import() and require() targets of `file` inside the repository, as repository paths. */
function importsOf(file: string, source: string): string[] {
  return ts
    .preProcessFile(source, true, true)
    .importedFiles.map((i) => i.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => {
      const target = posix.normalize(posix.join(posix.dirname(file), spec));
      const asTs = target.replace(/\.js$/, '.ts');
      return existsSync(join(ROOT, asTs)) ? asTs : target;
    });
}

export type ImportGraph = Map<string, string[]>;

const under = (dir: string) => (path: string) => path.startsWith(dir);
const isTest = (path: string) => path.endsWith('.test.ts') || under('test/')(path);
/** Product code: everything that ships or runs outside the test runner (tests may wire anything together). */
const isProduct = (path: string) => !isTest(path);

interface Rule {
  rule: string;
  from: (file: string) => boolean;
  forbidden: (target: string) => boolean;
}

/**
 * DESIGN.md §5. The wiring points that may reach card/ and host/ together: the CLI (host/cli/), the test harness
 * (testing/) and the package's entry points (entry/), each of which re-exports the layer it names; nothing below
 * them imports them back. What `import 'eticket'` loads is checked transitively below (PRODUCTION_ENTRIES).
 */
export const RULES: Rule[] = [
  { rule: 'card/ does not import host/', from: under('card/'), forbidden: under('host/') },
  { rule: 'host/ does not import card/ (only the CLI, host/cli/, wires them)', from: (f) => under('host/')(f) && !under('host/cli/')(f), forbidden: under('card/') },
  {
    rule: 'host/ does not import backoffice/ (terminals reach it over HTTP; only the CLI, host/cli/, runs it)',
    from: (f) => under('host/')(f) && !under('host/cli/')(f),
    forbidden: under('backoffice/'),
  },
  { rule: 'only tests import the entry points (entry/ is the top of the graph)', from: (f) => isProduct(f) && !under('entry/')(f), forbidden: under('entry/') },
  { rule: 'examples/ import the package by its name (eticket, eticket/pcsc, ...), never a repository path', from: under('examples/'), forbidden: () => true },
  { rule: 'sdk/ imports nothing outside sdk/ but the spec it reads', from: under('sdk/'), forbidden: (t) => !under('sdk/')(t) && t !== 'apdu-spec/protocol.json' },
  { rule: 'sdk codecs do not import the back-office roles (sdk/roles/)', from: (f) => under('sdk/')(f) && !under('sdk/roles/')(f), forbidden: under('sdk/roles/') },
  { rule: 'backoffice/ imports neither card/ nor host/ (terminals reach it over HTTP)', from: under('backoffice/'), forbidden: (t) => under('card/')(t) || under('host/')(t) },
  { rule: 'product code does not import test helpers (test/)', from: isProduct, forbidden: under('test/') },
];

/**
 * The entry points a production gate or kiosk loads (`eticket`, `eticket/pcsc`): nothing they reach, however
 * indirectly, may be the emulator, the test harness, the vectors, the back-office service or the CLI.
 */
export const PRODUCTION_ENTRIES = ['entry/index.ts', 'entry/pcsc.ts'];
const NOT_IN_PRODUCTION = ['card/', 'testing/', 'test-vectors/', 'backoffice/', 'host/cli/'];

/** Every product file `from` reaches through imports (itself excluded), with the chain that reaches it. */
export function reachable(graph: ImportGraph, from: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const queue: string[][] = [[from]];
  while (queue.length) {
    const chain = queue.shift()!;
    for (const t of graph.get(chain[chain.length - 1]) ?? []) {
      if (seen.has(t) || t === from || !isProduct(t)) continue;
      seen.set(t, [...chain, t]);
      queue.push([...chain, t]);
    }
  }
  return seen;
}

/** Files a production entry point loads that it must not, each with its import chain. */
export function productionLeaks(graph: ImportGraph, entries = PRODUCTION_ENTRIES): string[] {
  return entries.flatMap((e) => [...reachable(graph, e)].filter(([t]) => NOT_IN_PRODUCTION.some((d) => t.startsWith(d))).map(([, chain]) => chain.join(' -> ')));
}

export function violations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    if (isTest(file)) continue;
    for (const t of targets) for (const r of RULES) if (r.from(file) && r.forbidden(t)) out.push(`${file} imports ${t}: ${r.rule}`);
  }
  return out;
}

/** Import cycles among product files (Tarjan's strongly connected components), each as its files in order. */
export function cycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const edges = (f: string) => (graph.get(f) ?? []).filter((t) => graph.has(t) && isProduct(t));
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || edges(v).includes(v)) found.push(scc.reverse());
    }
  };
  for (const f of graph.keys()) if (isProduct(f) && !index.has(f)) visit(f);
  return found;
}

describe('layering (DESIGN.md §5)', () => {
  const graph: ImportGraph = new Map(sourceFiles().map((f) => [f, importsOf(f, readFileSync(join(ROOT, f), 'utf8'))]));

  it('reads the whole tree: every layer has files and imports', () => {
    for (const dir of ['card/', 'host/', 'sdk/', 'testing/', 'test-vectors/', 'bench/']) expect([...graph.keys()].some(under(dir)), dir).toBe(true);
    expect(graph.get('host/checking.ts')).toContain('sdk/commands/usage-command.ts');
  });

  it('no file imports across a forbidden boundary', () => {
    expect(violations(graph)).toEqual([]);
  });

  it('eticket and eticket/pcsc load no emulator, test harness, vectors, back-office service or CLI, even indirectly', () => {
    for (const e of PRODUCTION_ENTRIES) expect(graph.has(e), e).toBe(true);
    expect(reachable(graph, 'entry/index.ts').has('host/checking.ts')).toBe(true);
    expect(productionLeaks(graph)).toEqual([]);
  });

  it('product code has no import cycle', () => {
    expect(cycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the checks catch what they forbid (a card → host import, an sdk → roles import, a cycle)', () => {
    const bad: ImportGraph = new Map([
      ['card/a.ts', ['host/b.ts']],
      ['sdk/receipt.ts', ['sdk/roles/sym-receipts.ts']],
      ['host/transport/emulator.ts', ['card/icc.ts']],
      ['bench/pcsc.ts', ['test/helpers/pcsc-stack.ts']],
      ['backoffice/api.ts', ['host/session.ts']],
      ['host/checking.ts', ['backoffice/service.ts']],
      ['host/cli/store.ts', ['backoffice/service.ts', 'entry/index.ts']],
      ['examples/gate.ts', ['host/checking.ts']],
      ['x/one.ts', ['x/two.ts']],
      ['x/two.ts', ['x/one.ts']],
      ['card/a.test.ts', ['host/b.ts']],
    ]);
    expect(violations(bad)).toEqual([
      'card/a.ts imports host/b.ts: card/ does not import host/',
      'sdk/receipt.ts imports sdk/roles/sym-receipts.ts: sdk codecs do not import the back-office roles (sdk/roles/)',
      'host/transport/emulator.ts imports card/icc.ts: host/ does not import card/ (only the CLI, host/cli/, wires them)',
      'bench/pcsc.ts imports test/helpers/pcsc-stack.ts: product code does not import test helpers (test/)',
      'backoffice/api.ts imports host/session.ts: backoffice/ imports neither card/ nor host/ (terminals reach it over HTTP)',
      'host/checking.ts imports backoffice/service.ts: host/ does not import backoffice/ (terminals reach it over HTTP; only the CLI, host/cli/, runs it)',
      'host/cli/store.ts imports entry/index.ts: only tests import the entry points (entry/ is the top of the graph)',
      'examples/gate.ts imports host/checking.ts: examples/ import the package by its name (eticket, eticket/pcsc, ...), never a repository path',
    ]);
    expect(cycles(bad)).toEqual([['x/one.ts', 'x/two.ts']]);
  });

  it('the production check follows imports however deep (entry → host → card is a leak)', () => {
    const bad: ImportGraph = new Map([
      ['entry/index.ts', ['host/checking.ts']],
      ['host/checking.ts', ['sdk/x.ts', 'host/helper.ts']],
      ['host/helper.ts', ['card/applet.ts']],
      ['entry/pcsc.ts', ['host/transport/pcsc.ts']],
      ['entry/emulator.ts', ['card/applet.ts']],
    ]);
    expect(productionLeaks(bad)).toEqual(['entry/index.ts -> host/checking.ts -> host/helper.ts -> card/applet.ts']);
  });
});
