#!/usr/bin/env node
// Entry point of the `eticket` command: runs the compiled CLI (dist/, written by `npm run build`; a checkout
// builds it at `npm install`). No TypeScript is compiled at run time.
// `eticket issue`: V8's optimising compiler held back for a short command, and its back-office thread started now,
// beside the loading of the CLI (dist/host/cli/office-prestart.js).
try {
  const prestart = await import('../dist/host/cli/office-prestart.js');
  prestart.tuneJitForShortCommand(process.argv.slice(2));
  prestart.prestartIssueOffice(process.argv.slice(2));
} catch {
  // not built yet, or no worker threads: the command starts its thread itself (or reports the missing build below)
}
let cli;
try {
  cli = await import('../dist/host/cli/main.js');
} catch (e) {
  // Only the CLI itself missing is a build problem; anything else is the CLI's own error, reported as is.
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/host/cli/main.js')) {
    console.error('eticket: the compiled CLI (dist/) is missing: run `npm run build` in the eticket checkout, or reinstall the package');
    process.exit(70);
  }
  throw e;
}
await cli.run();
