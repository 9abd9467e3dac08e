// `eticket serve`: the back office's HTTP API (backoffice/http/app.ts) on the working directory's store
// (embedded: one process holds it) or a PostgreSQL server (--database: as many processes as needed).

import type { Command } from 'commander';
import { intArg } from './cmd-card.js';
import { emit, globals, passphrase, UsageError, workDir } from './context.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the back-office HTTP API (sellers, issuing terminals, gates, arbitration) until stopped')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0: any free port, printed)', intArg('port'), 8080)
    .option('--max-skew <seconds>', 'accepted clock difference of signed requests', intArg('max-skew'), 120)
    .option('--match-interval <ms>', 'how often uploaded taps are matched into trips (0: never; run `eticket match`)', intArg('match-interval'), 1000)
    .option('--sweep-interval <seconds>', 'real-name: destroy expired holder records and rewrite their table this often (0: never; `eticket realname sweep` does it on demand)', intArg('sweep-interval'), 300)
    .option('--totp-window <steps>', 'real-name: TOTP steps accepted either side of the service clock', intArg('totp-window'), 1)
    .addHelpText(
      'after',
      '\nEvery request but GET /v1/health is signed by a registered seller or terminal (docs/backoffice.md); the\nOpenAPI document is at /openapi.json. With the embedded store one process serves a working directory; with\n--database postgres://… run as many as you like. Stops cleanly on SIGINT / SIGTERM.\n\nExample:\n  $ eticket serve --port 8080\n  $ eticket --database postgres://eticket@db/eticket serve --host 0.0.0.0 --json',
    )
    .action(async (opts: { host: string; port: number; maxSkew: number; matchInterval: number; sweepInterval: number; totpWindow: number }, cmd: Command) => {
      if (opts.port > 65535) throw new UsageError('--port is 0..65535');
      if (opts.totpWindow > 100) throw new UsageError('--totp-window is 0..100 steps');
      const w = await workDir(cmd);
      const pass = await passphrase();
      w.loadAuthoritySigner(pass); // a wrong passphrase stops here, not at the first sale
      const [{ buildApp }, { openBackoffice }] = await Promise.all([import('../../backoffice/http/app.js'), import('./store.js')]);
      const office = await openBackoffice(cmd, w, pass, { totpWindow: opts.totpWindow }, { longRunning: true });
      const json = globals(cmd).json;
      const app = await buildApp({ bo: office.bo }, { maxSkewMs: opts.maxSkew * 1000 });
      // Real-name records are destroyed at expiry even when nobody asks for them; one line per sweep that did something.
      const sweep = async () => {
        if (!w.hasHolderKey) return;
        try {
          const r = await office.bo.realName.sweep();
          if (r.destroyed.length || r.vacuumed) process.stderr.write(JSON.stringify({ event: 'realname_sweep', destroyed: r.destroyed.length, vacuumed: r.vacuumed }) + '\n');
        } catch (e) {
          process.stderr.write(JSON.stringify({ event: 'realname_sweep_failed', message: (e as Error).message }) + '\n');
        }
      };
      let sweeping: Promise<void> = opts.sweepInterval > 0 ? sweep() : Promise.resolve();
      const timer = opts.sweepInterval > 0 ? setInterval(() => (sweeping = sweeping.then(sweep)), opts.sweepInterval * 1000) : undefined;
      timer?.unref();
      let url: string;
      try {
        url = await app.listen({ host: opts.host, port: opts.port });
      } catch (e) {
        if (timer) clearInterval(timer);
        await sweeping;
        await office.close();
        throw new UsageError(`cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message}`);
      }
      emit(cmd, { event: 'listening', url, pid: process.pid, store: office.store.engine }, `eticket back office on ${url} (store: ${office.store.engine === 'pglite' ? `embedded, ${w.dir}/store` : 'PostgreSQL'}); OpenAPI at ${url}/openapi.json; Ctrl-C to stop`);
      // Trips and anomalies: one matcher at a time per database works the queue; the others find it held and wait.
      let stopping = false;
      let wake: (() => void) | undefined;
      const matcher = office.bo.matcher();
      const matching = (async () => {
        while (!stopping && opts.matchInterval > 0) {
          try {
            for (let r = await matcher.matchPending(); r && r.tickets > 0 && !stopping; r = await matcher.matchPending()) {
              for (const a of r.anomalies) console.error(JSON.stringify({ event: 'anomaly', kind: a.kind, card: a.card, tid: a.tid, detail: a.detail }));
              if (r.denylisted.length) console.error(JSON.stringify({ event: 'denylisted', version: r.denylistVersion, cards: r.denylisted }));
            }
            await matcher.sweep();
          } catch (e) {
            console.error(JSON.stringify({ event: 'matcher_error', message: (e as Error).message }));
          }
          await new Promise<void>((r) => {
            const t = setTimeout(r, opts.matchInterval);
            wake = () => {
              clearTimeout(t);
              r();
            };
          });
        }
      })();
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      stopping = true;
      wake?.();
      await matching;
      if (timer) clearInterval(timer);
      await app.close();
      await sweeping;
      await office.close();
      if (!json) console.error('eticket back office stopped');
    });
}
