// `eticket gate`: a validator loop. Wait for a card, decide (host/gate.ts rules, the denylist it holds), record
// the entry or exit on the card, journal the tap durably, print PASS or REJECT with the reason; an image is one
// tap, a reader loops until Ctrl-C, uploading its journal in the background when given a back office.
// Gate mode pki (default) or sym (--mode sym: the master key only, no pki keys at the gate).

import type { Command } from 'commander';
import { hex } from '../../sdk/bytes.js';
import { formatServiceDate } from '../../sdk/fields.js';
import { TransportError, TransportTimeoutError } from '../../sdk/errors.js';
import { join, resolve } from 'node:path';
import { denylistTrust, gateCredential, journalDir } from './cmd-offline.js';
import { intArg } from './cmd-card.js';
import type { Direction } from '../gate.js';
import type { PcscTransport } from '../transport/pcsc.js';
import type { Transport } from '../transport/transport.js';
import { addCardOptions, emit, errorLine, EXIT, ExitStatus, globals, openTransport, passphrase, UsageError, workDir, type CardOptions } from './context.js';
import type { CheckingTerminalConfig, GateMode } from '../checking.js';
import type { GateConfig } from '../gate-config.js';
import type { DenylistTrust } from '../../sdk/roles/denylist.js';
import { addModeOption, addTerminalOptions, clockOf, terminalConfig, type TerminalOptions } from './cmd-tickets.js';
import type { RealNameCheck } from '../realname.js';

type GateOptions = CardOptions &
  TerminalOptions & { direction: string; train?: string; once?: boolean; audit?: boolean; config?: string; journal?: string; backoffice?: string; credential?: string; holderWait?: number };

/** What staff read on a real-name tap: the holder to compare with the person, or why it is not shown. */
function realNameLine(r: RealNameCheck): string {
  if (r.status === 'checked') return `holder ${r.holder!.name} (${r.holder!.document.type} ${r.holder!.document.number})`;
  return `holder ${r.status === 'mismatch' ? 'MISMATCH' : 'NOT CHECKED'} [${r.reason}]`;
}

export function registerGate(program: Command): void {
  addModeOption(
    addTerminalOptions(
      addCardOptions(
        program
          .command('gate')
          .description('run a gate: wait for a card, decide, record, print PASS or REJECT with the reason')
          .requiredOption('--direction <direction>', 'entry or exit')
          .option('--train <code>', 'only tickets for this train / route / event')
          .option('--once', 'stop after one card (always so with --card)')
          .option('--audit', 'also fetch and check TF_V on every tap (slower: 256 more bytes on air)')
          .option('--config <gate-dir>', "run from a gate's own configuration (`eticket provision-gate`; passphrase $ETICKET_GATE_PASSPHRASE) instead of the working directory")
          .option('--journal <dir>', 'the tap journal (default <working directory>/journal/<gate id>)')
          .option('--backoffice <url>', 'upload the journal and fetch the denylist in the background; real-name tickets: fetch and show the holder (needs --credential)')
          .option('--credential <file>', "the gate's credential (`eticket terminal add --kind gate`); its id is the gate id; opened with $ETICKET_CLIENT_PASSPHRASE")
          .option('--holder-wait <ms>', 'real-name tickets: how long a tap waits for the holder before it says NOT CHECKED [timeout] (default 2000)', intArg('holder-wait'))
          .addHelpText(
            'after',
            '\nWith --reader the gate loops, one line per tap, until Ctrl-C (exit 0). With --card (or --once) it\nprocesses one card; exit status 6 when it was rejected. --mode sym taps in 3 APDUs with AES only\n(the working directory\'s checking master key; cards personalised with it). With --config, the gate id,\nstation and mode come from the gate\'s gate.json unless given here, and its journal is <gate-dir>/journal.\n\nEvery tap is written to the gate\'s journal, durably, before the answer (docs/gates.md); a card on the denylist the\ngate holds is refused (REJECT denylisted). With --backoffice and --credential the loop uploads the journal and\nfetches the denylist in the background (`eticket journal upload` does it once); the back office being down\nnever delays a tap.\n\nExample:\n  $ eticket gate --reader "Virtual PCD 00 00" --station BJS --direction entry\n  $ eticket gate --card card.img --station SHH --direction exit --json\n  $ eticket gate --card card.img --station BJS --direction entry --mode sym\n  $ eticket gate --config /etc/eticket/gate --reader "ACS ACR122U" --direction entry',
          ),
      ),
      'BJS',
    ),
  ).action(async (opts: GateOptions, cmd: Command) => {
    if (opts.direction !== 'entry' && opts.direction !== 'exit') throw new UsageError('--direction is entry or exit');
    const direction: Direction = opts.direction;
    // Loaded here, not at the top: `eticket gate --help` loads none of them (test/cli-lazy.test.ts).
    const [{ CheckingTerminal, checkTerminalConfig }, { CardSession }, { receiptJson }, { PcscTransport }, { RecordingTransport }, { BackofficeClient }, { DenylistCache }, { GateJournal }, { JournalUploader }, { OfflineGate }, { holderJson }] = await Promise.all([
      import('../checking.js'),
      import('../session.js'),
      import('./format.js'),
      import('../transport/pcsc.js'),
      import('../transport/recording.js'),
      import('../backoffice-client.js'),
      import('../denylist.js'),
      import('../journal.js'),
      import('../journal-uploader.js'),
      import('../offline-gate.js'),
      import('../../sdk/roles/realname.js'),
    ]);
    const pcscOf = (transport: Transport): PcscTransport | undefined => {
      const inner = transport instanceof RecordingTransport ? transport.inner : transport;
      return inner instanceof PcscTransport ? inner : undefined;
    };
    const explicit = (name: string) => cmd.getOptionValueSource(name) === 'cli';
    let config: CheckingTerminalConfig;
    // The service date a tap looks for is the operator's day, not UTC's (a UTC+8 gate at 07:30 is on today's date).
    const { timeZoneOf, serviceDateAt } = await import('./timezone.js');
    let tz: string;
    // Where the journal lives and whose key signs the denylists: the gate's own directory, or the working directory.
    let place: { journal: (gateId: string) => string; trust: () => Promise<DenylistTrust> };
    if (opts.config) {
      const { loadGateConfig } = await import('../gate-config.js');
      config = loadGateConfig(opts.config, {
        passphrase: await passphrase({ gate: true }),
        mode: explicit('mode') ? opts.mode : undefined,
        gateId: explicit('gateId') ? opts.gateId : undefined,
        station: explicit('station') ? opts.station : undefined,
        clock: clockOf(opts.time),
      });
      tz = timeZoneOf(cmd);
      const g = config as GateConfig;
      place = { journal: () => (opts.journal ? resolve(opts.journal) : join(g.dir, 'journal')), trust: async () => ({ operator: g.operator, suite: g.suite, roots: g.authorities ?? [] }) };
    } else {
      const w = await workDir(cmd);
      config = terminalConfig(w, await passphrase(), opts);
      tz = timeZoneOf(cmd, w.config.timeZone);
      place = { journal: (id) => journalDir(w, id, opts.journal), trust: async () => denylistTrust(w) };
    }
    if (opts.backoffice && !opts.credential) throw new UsageError('--backoffice needs --credential (the gate signs its uploads and holder requests)');
    let realName: import('../realname.js').BackofficeHolderChecker | undefined;
    if (opts.backoffice) {
      const p = process.env.ETICKET_CLIENT_PASSPHRASE;
      if (!p) throw new UsageError("set ETICKET_CLIENT_PASSPHRASE: it opens the gate's credential file");
      const [{ loadCredential }, { BackofficeClient }, { BackofficeHolderChecker, totpStepFile }] = await Promise.all([
        import('../../sdk/roles/client-credential.js'),
        import('../backoffice-client.js'),
        import('../realname.js'),
      ]);
      const id = loadCredential(opts.credential!, p);
      // A gate registered without real-name keys uploads its journal but shows no holder (NOT CHECKED [no_service]).
      if (id.realName) realName = new BackofficeHolderChecker(new BackofficeClient({ url: opts.backoffice, clientId: id.clientId, signer: id.signer, realName: id.realName, totpSteps: totpStepFile(`${opts.credential}.totp-step`) }));
    }
    config = { ...config, realName, ...(opts.holderWait !== undefined ? { realNameTimeoutMs: opts.holderWait } : {}) };
    // A configuration the gate cannot work with (e.g. a gate id longer than the protocol carries) fails here, not per tap.
    checkTerminalConfig(config);
    const clock = config.clock!;
    const mode = config.mode!;
    const json = globals(cmd).json;

    let cred: Awaited<ReturnType<typeof gateCredential>> | undefined;
    if (opts.credential) {
      cred = await gateCredential(opts.credential);
      if (explicit('gateId') && opts.gateId !== cred.clientId) throw new UsageError(`--gate-id ${opts.gateId} is not the credential's gate ${cred.clientId}`);
      config.gateId = cred.clientId;
    }
    if (opts.backoffice && !cred) throw new UsageError('--backoffice needs --credential (the gate signs its uploads)');
    const { station, gateId } = config;
    const dir = place.journal(config.gateId);
    const journal = GateJournal.openDir(dir);
    const denylist = new DenylistCache(await place.trust(), join(dir, 'denylist.json'));
    const gate = new OfflineGate({ terminal: config, journal, denylist });
    const uploader = cred && opts.backoffice ? new JournalUploader(journal, [{ gateId: cred.clientId, client: new BackofficeClient({ url: opts.backoffice, clientId: cred.clientId, signer: cred.signer }), signer: cred.signer }], denylist, { log: json ? undefined : (e) => console.error(`gate ${cred!.clientId}: ${JSON.stringify(e)}`) }) : undefined;

    const tap = async (transport: Transport): Promise<boolean> => {
      const session = new CardSession(transport);
      const t0 = performance.now();
      try {
        const { decision, ticket, receipt, record, realName: rn } = await gate.tap(session, direction, { date: serviceDateAt(clock(), tz), train: opts.train, auditVerificationCode: opts.audit });
        const ms = Math.round(performance.now() - t0);
        const time = new Date(clock() * 1000).toISOString();
        // The receipt (and in sym mode its transaction) is what the journal keeps for the back office.
        const { receipt: encoded, transaction } = receipt ? receiptJson(receipt) : {};
        const logged = { ...(encoded ? { receipt: encoded } : {}), ...(transaction ? { transaction } : {}) };
        emit(
          cmd,
          { pass: decision.pass, reason: decision.reason, message: decision.message, mode, gate: config.gateId, gateId: config.gateId, seq: record?.seq, denylistVersion: record?.denylistVersion, tid: ticket?.face.tid, card: ticket && hex(ticket.cardSerial), counter: receipt?.counter, station, direction, time, ms, ...logged,
            // The holder only where this gate was given a back office to show it (--backoffice): it asked for it.
            ...(rn ? { realName: { status: rn.status, reason: rn.reason, ...(rn.holder && realName ? { holder: holderJson(rn.holder) } : {}) } } : {}),
          },
          `${decision.pass ? 'PASS' : 'REJECT'} ${ticket ? `${ticket.face.tid} ${formatServiceDate(ticket.face.serviceDate)} ${ticket.face.train ?? ''} ` : ''}${decision.reason ? `[${decision.reason}] ` : ''}${decision.message}${rn ? `; ${realNameLine(rn)}` : ''} (${ms} ms${record ? `, journal #${record.seq}` : ''})`.replace(/ +/g, ' '),
        );
        return decision.pass;
      } finally {
        await session.close().catch(() => undefined);
      }
    };

    if (opts.card || opts.once) {
      try {
        const { transport } = await openTransport(cmd, opts);
        const pcsc = pcscOf(transport);
        if (pcsc) await pcsc.waitForCard(60_000);
        const pass = await tap(transport);
        if (!pass) throw new ExitStatus(EXIT.REJECTED);
        return;
      } finally {
        await journal.close();
      }
    }
    if (!opts.reader) {
      await journal.close();
      throw new UsageError('which reader? give --reader <name> (or --card <image> for one tap)');
    }
    uploader?.start();

    const { transport } = await openTransport(cmd, opts);
    const reader = pcscOf(transport)!;
    let stopping = false;
    const stop = () => {
      stopping = true;
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (!json) console.error(`gate ${gateId} at ${station} (${direction}, mode ${mode}) waiting for cards on "${opts.reader}"; Ctrl-C to stop`);
    let taps = 0;
    while (!stopping) {
      try {
        await reader.waitForCard(500);
      } catch (e) {
        if (e instanceof TransportTimeoutError) continue;
        throw e;
      }
      taps++;
      try {
        await tap(transport);
      } catch (e) {
        // passGate answers REJECT for anything a card does; whatever still fails one tap (a reader fault, a bug)
        // is reported on that tap's line and the gate keeps serving the next passenger.
        const reason = e instanceof TransportError ? 'transport' : 'internal';
        emit(cmd, { pass: false, reason, message: errorLine(e), mode }, `REJECT [${reason}] ${errorLine(e)}`);
        if (globals(cmd).debug) console.error(e);
      }
      // One tap per presentation: wait for the card to leave before the next.
      while (!stopping && (await reader.status()).cardPresent) await new Promise((r) => setTimeout(r, 100));
    }
    await transport.disconnect().catch(() => undefined);
    await uploader?.stop();
    await journal.close();
    if (!json) console.error(`gate stopped after ${taps} tap(s)`);
  });
}

export function registerProvisionGate(program: Command): void {
  program
    .command('provision-gate <gate-dir>')
    .description("write a gate's own configuration: gate.json, trust root, authority key, and only the keys its modes need, under the gate's passphrase")
    .requiredOption('--gate-id <id>', 'terminal id the gate writes into usage records')
    .requiredOption('--station <code>', 'station the gate stands at')
    .option('--mode <mode>', 'gate modes to give it keys for: pki (keys 4/5), sym (the checking master key) or both', 'pki')
    .option('--force', 'replace an existing gate configuration in <gate-dir>')
    .addHelpText(
      'after',
      `
Needs the working directory's passphrase ($ETICKET_PASSPHRASE) to open the keys, and the gate's own
($ETICKET_GATE_PASSPHRASE, or a prompt) to encrypt its copy. The gate never gets the CA, KGC or authority
private keys. A program loads the directory with loadGateConfig() from the eticket package; the CLI with
\`eticket gate --config <gate-dir>\` (docs/sdk.md).

Example:
  $ eticket provision-gate ./gate-bjs-07 --gate-id BJS-G07 --station BJS
  $ eticket provision-gate ./gate-shh-01 --gate-id SHH-G01 --station SHH --mode both`,
    )
    .action(async (gateDir: string, opts: { gateId: string; station: string; mode: string; force?: boolean }, cmd: Command) => {
      const modes: GateMode[] | undefined = opts.mode === 'both' ? ['pki', 'sym'] : opts.mode === 'pki' || opts.mode === 'sym' ? [opts.mode] : undefined;
      if (!modes) throw new UsageError('--mode is pki, sym or both');
      const w = await workDir(cmd);
      const pass = await passphrase();
      const gatePassphrase = await passphrase({ gate: true, confirm: true });
      const g = w.provisionGate(gateDir, { gateId: opts.gateId, station: opts.station, modes, passphrase: pass, gatePassphrase, force: opts.force });
      emit(cmd, { ok: true, dir: gateDir, gateId: g.gateId, station: g.station, operator: g.operator, suite: g.suite, modes: g.modes }, [
        `gate ${g.gateId} at ${g.station} provisioned in ${gateDir} (operator ${g.operator}, suite ${g.suite}, modes ${g.modes.join(', ')})`,
        `  keys/ is encrypted with the gate passphrase; run it with: eticket gate --config ${gateDir} --reader <name> --direction entry`,
      ]);
    });
}
