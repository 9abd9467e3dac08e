// Test helper, preloaded with `node --import`: appends the URL of every ES module the process loads to the file
// named by $ETICKET_LOAD_TRACE, so that a test can see what `eticket --help` loads (test/cli-lazy.test.ts).

import { register } from 'node:module';

const file = process.env.ETICKET_LOAD_TRACE;
if (file) {
  const hooks = `
    import { appendFileSync } from 'node:fs';
    export async function load(url, context, next) {
      appendFileSync(${JSON.stringify(file)}, url + '\\n');
      return next(url, context);
    }`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`);
}
