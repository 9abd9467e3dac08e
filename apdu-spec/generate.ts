// Generates apdu-spec/reference.md from protocol.json, so the human tables and the machine file
// cannot disagree. `npm run spec:gen` writes it; a test fails when the committed file is stale.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { protocol } from '../sdk/spec.js';

const esc = (s: string) => s.replace(/\|/g, '\\|');

function swName(sw: string): string {
  return protocol.statusWords.find((s) => s.sw === sw)?.name ?? '?';
}

export function renderReference(): string {
  const out: string[] = [];
  const p = protocol;
  out.push(`# eticket card protocol, version ${p.version}: reference tables`, '');
  out.push('Generated from `protocol.json` by `npm run spec:gen`. Do not edit by hand: edit the JSON. The narrative (cryptography, sequences, rationale) is in `README.md`.', '');
  out.push(`- **AID**: \`${p.aid}\``, `- **ATR**: \`${p.atr.hex}\`. ${p.atr.description}`, '');
  out.push('## Limits', '', '| limit | value |', '| --- | --- |');
  for (const [k, v] of Object.entries(p.limits)) out.push(`| ${k} | ${v} |`);
  out.push('', '## Suites', '', '| id | name | description |', '| --- | --- | --- |');
  for (const s of p.suites) out.push(`| ${s.id} | ${s.name} | ${esc(s.description)} |`);
  out.push('', '## Life cycle', '', '| value | name | description |', '| --- | --- | --- |');
  for (const l of p.lifecycle) out.push(`| ${l.value} | ${l.name} | ${esc(l.description)} |`);
  out.push('', '## Commands', '', '| command | CLA | INS | P1 | P2 | case | life cycle | chaining |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const c of p.commands) {
    out.push(`| ${c.name} | ${c.cla} | ${c.ins} | ${c.p1.join(', ')} | ${c.p2.join(', ')} | ${c.case} | ${c.lifecycle} | ${c.chaining ? 'yes' : 'no'} |`);
  }
  for (const c of p.commands) {
    out.push('', `### ${c.name} (${c.cla} ${c.ins})`, '', `- Data: ${c.data}`, `- Response: ${c.response}`, `- Needs the application selected: ${c.requiresSelection ? 'yes' : 'no'}`, '', '| SW | name |', '| --- | --- |');
    for (const sw of c.statusWords) out.push(`| ${sw} | ${swName(sw)} |`);
  }
  out.push('', `Every command may also answer the common status words: ${p.commonStatusWords.map((s) => `${s} ${swName(s)}`).join(', ')}.`);
  out.push('', '## Status words', '', '| SW | name | meaning |', '| --- | --- | --- |');
  for (const s of p.statusWords) out.push(`| ${s.sw} | ${s.name} | ${esc(s.description)} |`);
  const fields = (title: string, list: typeof p.ticketFace) => {
    out.push('', `## ${title}`, '', '| tag | name | format | length | required | description |', '| --- | --- | --- | --- | --- | --- |');
    for (const f of list) out.push(`| ${f.tag} | ${f.name} | ${f.format} | ${f.length ?? ''} | ${f.required === undefined ? '' : f.required ? 'yes' : 'no'} | ${esc(f.description)} |`);
  };
  fields('Data objects', p.dataObjects);
  fields('Ticket face TF_A (inside A1)', p.ticketFace);
  fields('Verification code TF_V (inside A2)', p.verificationCode);
  fields('Sealed envelope (inside B1)', p.sealedEnvelope);
  fields('Terminal key bundle (D0 of PUT KEY P1=02)', p.terminalKeyBundle);
  fields('Usage record TF_B (inside A3)', p.usageRecord);
  out.push('', '## Usage events', '', '| value | name | rule |', '| --- | --- | --- |');
  for (const e of p.usageEvents) out.push(`| ${e.value} | ${e.name} | ${esc(e.description)} |`);
  out.push('', '## Usage states', '', '| value | name |', '| --- | --- |');
  for (const s of p.usageStates) out.push(`| ${s.value} | ${s.name} |`);
  return out.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('./reference.md', import.meta.url), renderReference());
  console.log('apdu-spec/reference.md written');
}
