// QA: the APDU conformance vectors of apdu-spec against fresh emulated cards (default) or the card in a PC/SC
// reader, with a summary table and a JUnit report a CI server reads. The vectors use the TEST ONLY keys of the
// eticket repository (test-vectors/keys/), which the package leaves out on purpose: give their directory.
//
//   node qa-vectors.js --keys <test-vectors/keys> [--reader <name>] [--area load,read-verify] [--junit report.xml]
//
// Exit status 0 when every selected vector passed, 4 when any failed (as `eticket vectors run`).

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { imageProvider, loadVectorFiles, readerProvider, runVectors, summaryTable, vectorFiles, writeReport } from 'eticket/vectors';

const { values } = parseArgs({ options: { keys: { type: 'string' }, reader: { type: 'string' }, area: { type: 'string' }, junit: { type: 'string' } } });
if (!values.keys) {
  console.error('usage: qa-vectors --keys <test-vectors/keys> [--reader <name>] [--area load,...] [--junit report.xml]');
  process.exit(1);
}

// The vector files ship with the package; a blank card in a reader is personalised with the TEST ONLY profile first.
const files = loadVectorFiles(vectorFiles());
const provider = values.reader ? readerProvider({ reader: values.reader }) : imageProvider();
const report = await runVectors(files, provider, {
  keysDir: values.keys,
  areas: values.area?.split(','),
  onTest: (o) => {
    if (o.status === 'fail') console.error(`FAIL ${o.suite}-${o.area} tcId ${o.tcId}: ${o.comment}: ${o.message}`);
  },
});
process.stdout.write(summaryTable(report));
if (values.junit) writeFileSync(values.junit, writeReport(report, 'junit'));
process.exitCode = report.counts.fail > 0 ? 4 : 0;
