// `eticket inspect` (an inspector's check of a real-name ticket: the card proves the ticket, the back office gives
// the holder, the binding proves it belongs to it) and `eticket realname limits | status | log | sweep | rotate-key`
// (the operator's side: read limits, a ticket's state, the access log, destruction, master key rotation).

import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { hex } from '../../sdk/bytes.js';
import { formatServiceDate } from '../../sdk/fields.js';
import { holderJson } from '../../sdk/holder.js';
import type { RealNameCheck } from '../realname.js';
import { intArg } from './cmd-card.js';
import { kindArg, kindName } from './cmd-clients.js';
import { addModeOption, addTerminalOptions, terminalConfig, type TerminalOptions } from './cmd-tickets.js';
import { addCardOptions, emit, EXIT, ExitStatus, passphrase, UsageError, withCard, workDir, type CardOptions } from './context.js';

/** The store and its back office: loaded by the action that opens them, never by --help (host/cli/main.ts). */
const backoffice = () => import('./store.js');

type InspectOptions = CardOptions & TerminalOptions & { tid?: string; backoffice: string; credential: string; photoOut?: string; timeout: number };

/** The exit status of an inspection that did not show a holder (docs/cli.md "Exit codes"). */
export function inspectExit(r: RealNameCheck): number {
  if (r.status === 'checked') return EXIT.OK;
  if (r.status === 'mismatch' || r.reason === 'bad_answer') return EXIT.CRYPTO;
  if (r.reason === 'unreachable' || r.reason === 'timeout') return EXIT.TRANSPORT;
  return EXIT.HOLDER_REFUSED;
}

function clientPassphrase(): string {
  const p = process.env.ETICKET_CLIENT_PASSPHRASE;
  if (!p) throw new UsageError("set ETICKET_CLIENT_PASSPHRASE: it opens the terminal's credential file");
  return p;
}

export function registerRealName(program: Command): void {
  const inspect = program
    .command('inspect')
    .description("real-name check: the card proves the ticket, the back office gives its holder to this authorised terminal, and the ticket's binding proves the holder is this ticket's")
    .option('--tid <tid>', 'the ticket (default: the first one for today on the card)')
    .requiredOption('--backoffice <url>', 'the back office API (`eticket serve`)')
    .requiredOption('--credential <file>', "this terminal's credential file (`eticket terminal add --kind inspector`), opened with $ETICKET_CLIENT_PASSPHRASE")
    .option('--photo-out <file>', "write the holder's photo there (when the record has one)")
    .option('--timeout <seconds>', 'how long to wait for the back office', intArg('timeout'), 15);
  addModeOption(addTerminalOptions(addCardOptions(inspect), 'OFFICE'));
  inspect.addHelpText(
    'after',
    `
Prints the holder (name, ID document, photo) only when the back office agreed and the record matches the
ticket's binding; each inspection spends one of the ticket's reads. Exit status: 0 holder shown; 1 not a
real-name ticket (or bad usage); 2 the card refused; 3 back office unreachable or too slow; 5 the record does
not belong to this ticket (or the answer does not open); 8 the back office refused (not permitted, TOTP,
reads used up, expired: the reason is printed).

Example:
  $ ETICKET_CLIENT_PASSPHRASE=... eticket inspect --card card.img --backoffice http://127.0.0.1:8080 --credential insp-1.json
  $ eticket inspect --reader "Virtual PCD 00 00" --tid CR-20300115-000001 --backoffice https://bo.example --credential insp-1.json --json`,
  );
  inspect.action(async (opts: InspectOptions, cmd: Command) => {
    const [{ loadCredential }, { isRealName }, { BackofficeClient }, { CheckingTerminal }, { BackofficeHolderChecker, totpStepFile }] = await Promise.all([
      import('../../sdk/roles/client-credential.js'),
      import('../../sdk/ticket.js'),
      import('../backoffice-client.js'),
      import('../checking.js'),
      import('../realname.js'),
    ]);
    const id = loadCredential(opts.credential, clientPassphrase());
    if (!id.realName) throw new UsageError(`${opts.credential} is not a gate or inspector registered for real-name checks`);
    const client = new BackofficeClient({ url: opts.backoffice, clientId: id.clientId, signer: id.signer, realName: id.realName, timeoutMs: opts.timeout * 1000, totpSteps: totpStepFile(`${opts.credential}.totp-step`) });
    const w = await workDir(cmd);
    const config = { ...terminalConfig(w, await passphrase(), opts), realName: new BackofficeHolderChecker(client), realNameTimeoutMs: opts.timeout * 1000 };
    await withCard(cmd, opts, async ({ session }) => {
      const t = new CheckingTerminal(session, config);
      await t.select();
      const today = Number(new Date(config.clock!() * 1000).toISOString().slice(0, 10).replace(/-/g, ''));
      const view = await t.verifyTicket(opts.tid ? { tid: opts.tid } : { date: today }, { verificationCode: true });
      const f = view.face;
      const what = `${f.tid} ${formatServiceDate(f.serviceDate)} ${f.train ?? ''} ${[f.origin, f.destination].filter(Boolean).join('→')}`.replace(/ +/g, ' ');
      if (!isRealName(f)) throw new UsageError(`ticket ${f.tid} is not a real-name ticket: it has no holder to check`);
      const r = await t.checkHolder(view);
      if (r.holder?.photo && opts.photoOut) writeFileSync(opts.photoOut, r.holder.photo, { mode: 0o600 });
      const json = {
        tid: f.tid,
        card: hex(view.cardSerial),
        realName: { status: r.status, ...(r.holder ? { holder: holderJson(r.holder) } : {}), readsLeft: r.readsLeft, reason: r.reason, message: r.message },
      };
      const lines =
        r.status === 'checked'
          ? [
              `ticket ${what}: holder CHECKED (${r.readsLeft} read${r.readsLeft === 1 ? '' : 's'} left)`,
              `  name:     ${r.holder!.name}`,
              `  document: ${r.holder!.document.type} ${r.holder!.document.number}`,
              ...(r.holder!.photo ? [`  photo:    ${r.holder!.photo.length} bytes${opts.photoOut ? ` written to ${opts.photoOut}` : ' (--photo-out FILE to see it)'}`] : []),
            ]
          : [`ticket ${what}: holder ${r.status === 'mismatch' ? 'MISMATCH' : 'NOT CHECKED'} [${r.reason}] ${r.message ?? ''}`.trim()];
      emit(cmd, json, lines);
      const code = inspectExit(r);
      if (code !== EXIT.OK) throw new ExitStatus(code);
    });
  });

  const rn = program
    .command('realname')
    .description('real-name tickets, the operator side: read limits, a ticket\'s state, the access log, destruction, master key rotation')
    .addHelpText('after', '\nExample:\n  $ eticket realname limits --kind rail --reads 3\n  $ eticket realname log --tid CR-20300115-000001\n  $ eticket realname sweep');

  rn.command('limits')
    .description('how many times the holder data of a ticket of a kind may be read (kind 0: tickets without a kind, and the default)')
    .option('--kind <kind>', 'rail, metro, bus, event or 0..255', kindArg)
    .option('--reads <n>', 'reads allowed (1..1000); applies to tickets issued from now on', intArg('reads'))
    .addHelpText('after', '\nWithout --reads, lists the limits. A kind without a limit takes kind 0\'s, and without that 3.\n\nExample:\n  $ eticket realname limits --kind rail --reads 3\n  $ eticket realname limits --json')
    .action(async (opts: { kind?: number; reads?: number }, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        if (opts.reads !== undefined) {
          if (opts.reads < 1 || opts.reads > 1000) throw new UsageError('--reads is 1..1000');
          await store.holders.setReadLimit(opts.kind ?? 0, opts.reads);
        } else if (opts.kind !== undefined) throw new UsageError('--kind goes with --reads');
        const limits = await store.holders.readLimits();
        emit(cmd, { limits }, limits.length ? limits.map((l) => `${l.kind === 0 ? 'default (kind 0)' : kindName(l.kind)}: ${l.maxReads} read(s)`) : 'no limits set: 3 reads per ticket');
      });
    });

  rn.command('status')
    .description("a real-name ticket's state: held or destroyed (and why), reads used, expiry; never the holder")
    .requiredOption('--tid <tid>', 'the ticket')
    .addHelpText('after', '\nExample:\n  $ eticket realname status --tid CR-20300115-000001 --json')
    .action(async (opts: { tid: string }, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const t = await store.holders.ticket(w.config.operator, opts.tid);
        if (!t) throw new UsageError(`no real-name ticket ${opts.tid}`);
        const j = { tid: t.tid, issuance: t.issuance, state: t.state, destroyedReason: t.destroyedReason, destroyedAt: t.destroyedAt?.toISOString(), readsUsed: t.readsUsed, readsMax: t.readsMax, expiresAt: t.expiresAt.toISOString(), holderRef: hex(t.holderRef) };
        emit(cmd, j, `${t.tid}: ${t.state === 'held' ? 'holder record held' : `holder record destroyed (${t.destroyedReason}, ${t.destroyedAt!.toISOString()})`}; ${t.readsUsed}/${t.readsMax} reads; expires ${t.expiresAt.toISOString()}`);
      });
    });

  rn.command('log')
    .description('every holder read and every refusal, with its reason (by ticket and terminal; never the holder)')
    .option('--tid <tid>', 'one ticket')
    .option('--issuance <n>', 'with --tid: one issuance of it (a TID withdrawn from a full card and issued again has several)', intArg('issuance'))
    .option('--terminal <id>', 'one terminal (as it called itself)')
    .option('--limit <n>', 'at most this many entries', intArg('limit'), 1000)
    .addHelpText('after', '\nEach entry names the issuance of the TID whose reference the request named (#2: the second), where one did.\n\nExample:\n  $ eticket realname log --tid CR-20300115-000001\n  $ eticket realname log --tid CR-20300115-000001 --issuance 2 --json\n  $ eticket realname log --terminal gate-7 --json')
    .action(async (opts: { tid?: string; issuance?: number; terminal?: string; limit: number }, cmd: Command) => {
      if (opts.issuance !== undefined && opts.tid === undefined) throw new UsageError('--issuance goes with --tid');
      if (opts.issuance !== undefined && opts.issuance < 1) throw new UsageError('--issuance is 1 or more');
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const entries = await store.holders.accessLog({ tid: opts.tid, issuance: opts.issuance, clientId: opts.terminal, limit: opts.limit });
        emit(
          cmd,
          { entries: entries.map((e) => ({ ...e, at: e.at?.toISOString() })) },
          entries.length ? entries.map((e) => `${e.at?.toISOString()} ${e.clientId} ${e.tid ?? '-'}${e.issuance !== undefined ? ` #${e.issuance}` : ''} ${e.outcome.toUpperCase()} ${e.reason}${e.readsLeft !== undefined ? ` (${e.readsLeft} left)` : ''}`) : 'no entries',
        );
      });
    });

  rn.command('sweep')
    .description('destroy the holder records of expired tickets now, and rewrite the holder table so their bytes leave its files (`eticket serve` does it every --sweep-interval)')
    .addHelpText('after', '\nExample:\n  $ eticket realname sweep --json')
    .action(async (_o: unknown, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ bo }) => {
        const r = await bo.realName.sweep();
        emit(cmd, { ok: true, destroyed: r.destroyed.map((d) => d.tid), vacuumed: r.vacuumed }, `${r.destroyed.length} expired holder record(s) destroyed; holder table ${r.vacuumed ? 'rewritten' : 'unchanged (nothing destroyed since its last rewrite)'}`);
      });
    });

  rn.command('rotate-key')
    .description('new holder master key: every data key and TOTP secret is re-sealed under it, then the old key files are deleted (what WAL, backups and replicas still hold of destroyed records can no longer be decrypted)')
    .addHelpText(
      'after',
      '\nRun it where the working directory lives, then copy keys/ and eticket.json to the other machines that run\n`eticket serve` on the same database. A record the old key cannot open (altered in the store) is listed and\nkeeps the old key alive until it is destroyed.\n\nExample:\n  $ eticket realname rotate-key',
    )
    .action(async (_o: unknown, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      const pass = await passphrase();
      const { previous, current } = w.rotateHolderKey(pass);
      await withBackoffice(cmd, w, pass, async ({ bo }) => {
        const r = await bo.realName.rewrapAll();
        const retired = w.retireHolderKeys(previous.filter((id) => id !== current && !r.inUse.includes(id)));
        const kept = previous.filter((id) => id !== current && !retired.includes(id));
        emit(
          cmd,
          { ok: kept.length === 0, current, retired, kept, records: r.records, totps: r.totps, unreadable: r.unreadable.map((u) => u.tid) },
          [
            `holder master key ${current} is current; ${r.records} record key(s) and ${r.totps} TOTP secret(s) re-sealed`,
            retired.length ? `deleted key file(s): ${retired.join(', ')}` : 'no old key file to delete',
            ...(kept.length ? [`kept ${kept.join(', ')}: still in use by ${r.unreadable.length ? `unreadable record(s) ${r.unreadable.map((u) => u.tid).join(', ')}` : 'records sealed meanwhile'}; run again`] : []),
          ],
        );
        if (kept.length) throw new ExitStatus(EXIT.PARTIAL);
      });
    });
}
