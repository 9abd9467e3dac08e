// Report writers for a vector run: a summary table for people, JUnit XML and TAP 13 for CI, JSON for tools.
// Each takes the runner's RunReport and returns text; none of them decides what passed.

import type { RunReport, TestOutcome } from './runner.js';

/** Report formats for CI. */
export type ReportFormat = 'junit' | 'tap' | 'json';

/** The report as JUnit XML, TAP 13 or JSON. */
export function writeReport(report: RunReport, format: ReportFormat): string {
  switch (format) {
    case 'junit':
      return junit(report);
    case 'tap':
      return tap(report);
    case 'json':
      return JSON.stringify(report, null, 2) + '\n';
  }
}

/** One line per file and area: tests, passed, failed, skipped; then the failures, one line each. */
export function summaryTable(report: RunReport): string {
  const rows = new Map<string, { total: number; pass: number; fail: number; skip: number }>();
  for (const o of report.outcomes) {
    const key = `${o.suite}-${o.area}`;
    const r = rows.get(key) ?? { total: 0, pass: 0, fail: 0, skip: 0 };
    r.total++;
    r[o.status]++;
    rows.set(key, r);
  }
  const head = ['vectors', 'tests', 'pass', 'fail', 'skip'];
  const body = [...rows].map(([k, r]) => [k, String(r.total), String(r.pass), String(r.fail), String(r.skip)]);
  body.push(['total', String(report.counts.total), String(report.counts.pass), String(report.counts.fail), String(report.counts.skip)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [`card: ${report.provider}`, line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.slice(0, -1).map(line), widths.map((w) => '-'.repeat(w)).join('  '), line(body[body.length - 1])];
  for (const o of report.outcomes.filter((o) => o.status === 'fail')) out.push(`FAIL ${o.suite}-${o.area} tcId ${o.tcId} [${o.flags.join(',')}] ${o.comment}: ${o.message}`);
  return out.join('\n') + '\n';
}

function xml(s: string): string {
  // Control characters are not allowed in XML 1.0 even escaped; card answers go through hex anyway.
  return s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '?').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function apduText(o: TestOutcome): string {
  return o.apdus.map((a) => `> ${a.command}\n< ${a.response}`).join('\n');
}

/** JUnit XML as Jenkins, GitLab and GitHub test reporters read it: one testsuite per vector file. */
function junit(report: RunReport): string {
  const suites = new Map<string, TestOutcome[]>();
  for (const o of report.outcomes) suites.set(`${o.suite}-${o.area}`, [...(suites.get(`${o.suite}-${o.area}`) ?? []), o]);
  const secs = (list: TestOutcome[]) => (list.reduce((n, o) => n + o.ms, 0) / 1000).toFixed(3);
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="eticket APDU vectors" tests="${report.counts.total}" failures="${report.counts.fail}" skipped="${report.counts.skip}" errors="0" time="${secs(report.outcomes)}">`,
  ];
  for (const [name, list] of suites) {
    const fails = list.filter((o) => o.status === 'fail').length;
    const skips = list.filter((o) => o.status === 'skip').length;
    out.push(`  <testsuite name="${xml(name)}" tests="${list.length}" failures="${fails}" skipped="${skips}" errors="0" time="${secs(list)}">`);
    out.push(`    <properties><property name="card" value="${xml(report.provider)}"/></properties>`);
    for (const o of list) {
      const open = `    <testcase classname="${xml(`eticket.${name}`)}" name="${xml(`tcId ${o.tcId}: ${o.comment}`)}" time="${(o.ms / 1000).toFixed(3)}"`;
      if (o.status === 'pass') {
        out.push(`${open}/>`);
      } else if (o.status === 'skip') {
        out.push(`${open}><skipped message="${xml(o.message ?? '')}"/></testcase>`);
      } else {
        out.push(`${open}>`);
        out.push(`      <failure message="${xml(o.message ?? 'failed')}" type="${xml(o.flags.join(',') || 'vector')}">${xml(`flags: ${o.flags.join(', ')}\nresult: ${o.result}\n${o.message ?? ''}\n${apduText(o)}`)}</failure>`);
        out.push('    </testcase>');
      }
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}

/** TAP version 13, with a YAML block for each failure. */
function tap(report: RunReport): string {
  const out = ['TAP version 13', `1..${report.outcomes.length}`];
  for (const [i, o] of report.outcomes.entries()) {
    const desc = `${o.suite}-${o.area} tcId ${o.tcId} - ${o.comment}`.replace(/#/g, '\\#');
    if (o.status === 'skip') {
      out.push(`ok ${i + 1} ${desc} # SKIP ${o.message ?? ''}`);
      continue;
    }
    out.push(`${o.status === 'pass' ? 'ok' : 'not ok'} ${i + 1} ${desc}`);
    if (o.status === 'fail') {
      out.push('  ---');
      out.push(`  message: ${JSON.stringify(o.message ?? '')}`);
      out.push(`  flags: [${o.flags.join(', ')}]`);
      out.push(`  result: ${o.result}`);
      out.push('  apdus:');
      for (const a of o.apdus) out.push(`    - { command: "${a.command}", response: "${a.response}" }`);
      out.push('  ...');
    }
  }
  out.push(`# pass ${report.counts.pass}`, `# fail ${report.counts.fail}`, `# skip ${report.counts.skip}`);
  return out.join('\n') + '\n';
}
