// `eticket init` (the back office's keys in a working directory) and `eticket card create | info |
// personalize | serve` (card images: manufacture, inspect, personalise, expose to PC/SC through vpcd).

import { existsSync, rmSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { join, resolve } from 'node:path';
import type { EticketCard } from '../../card/applet.js';
import { FileLock } from '../../sdk/file-lock.js';
import { fromHex, hex } from '../../sdk/bytes.js';
import { decodeAnswer } from '../../sdk/commands/answer.js';
import { decodeInstalledKeys } from '../../sdk/commands/get-data.js';
import { TransportError } from '../../sdk/errors.js';
import { LIMITS, T, type SuiteName } from '../../sdk/spec.js';
import { addCardOptions, emit, globals, openImage, passphrase, UsageError, withCard, workDir, workDirPath, type CardOptions } from './context.js';

export function intArg(name: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a whole number`);
    return Number(v);
  };
}

function suiteArg(v: string): SuiteName {
  if (v !== 'rsa' && v !== 'sm9') throw new InvalidArgumentError('suite is rsa or sm9');
  return v;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create a working directory: CA, authority key (1/6), checking-terminal keys (4/5), checking master key (gate mode sym), the store (tickets, bills, keys history)')
    .option('--operator <code>', 'operator code written into every ticket (1-16 of A-Z a-z 0-9 _ . -)', 'CR')
    .option('--suite <suite>', 'crypto suite: rsa (CA-certified keys) or sm9 (identity keys from a key generation centre)', suiteArg, 'rsa')
    .option('--ca-name <name>', 'common name of the CA certificate')
    .option('--force', 'replace the keys of an existing working directory (cards personalised with them stop working)')
    .option('--add-master-key', 'give an existing working directory (made before gate mode sym) its checking master key; nothing else changes')
    .option('--time-zone <zone>', "the operator's time zone (IANA name): which day a gate's clock falls on, and where a service day starts; with an existing working directory, only this changes")
    .option('--migrate', 'give an existing working directory its store: create it (or connect --database) and import ledger.json; keys are kept')
    .option('--add-holder-key', 'give an existing working directory (made before real-name tickets) its holder master key; nothing else changes')
    .addHelpText(
      'after',
      '\nThe passphrase that encrypts the private keys comes from $ETICKET_PASSPHRASE, or a prompt on a terminal.\nWith --add-master-key it must be the working directory\'s passphrase; only cards personalised afterwards\nget the diversified key that gate mode sym needs.\n\nExample:\n  $ export ETICKET_PASSPHRASE=...\n  $ eticket init --dir ./office --operator CR\n  $ eticket init --dir ./old-office --add-master-key',
    )
    .action(async (opts: { operator: string; suite: SuiteName; caName?: string; force?: boolean; addMasterKey?: boolean; migrate?: boolean; addHolderKey?: boolean; timeZone?: string }, cmd: Command) => {
      const dir = workDirPath(cmd);
      if (opts.addHolderKey) {
        if (opts.force || opts.addMasterKey || opts.migrate || opts.timeZone !== undefined) throw new UsageError('--add-holder-key keeps the existing keys; give it alone');
        const w = await workDir(cmd);
        const id = w.addHolderKey(await passphrase());
        emit(cmd, { ok: true, dir: w.dir, holderMasterKey: id }, `holder master key ${id} added to ${w.dir} (keys/holder-master-${id}): real-name tickets can be issued now`);
        return;
      }
      const { checkTimeZone } = await import('./timezone.js');
      const tz = opts.timeZone === undefined ? undefined : checkTimeZone(opts.timeZone);
      if (tz && !opts.force && existsSync(join(dir, 'eticket.json'))) {
        if (opts.migrate || opts.addMasterKey) throw new UsageError('--time-zone on an existing working directory goes alone');
        const w = await workDir(cmd);
        w.setTimeZone(tz);
        emit(cmd, { ok: true, dir: w.dir, timeZone: tz }, `time zone of ${w.dir}: ${tz} (service dates at gates, default validity)`);
        return;
      }
      if (opts.migrate) {
        if (opts.force || opts.addMasterKey) throw new UsageError('--migrate keeps the existing keys; give it alone');
        const w = await workDir(cmd);
        const { withBackoffice } = await import('./store.js');
        const info = await withBackoffice(cmd, w, undefined, async ({ store }) => ({ engine: store.engine, tids: Number((await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM tids')).rows[0].n), keys: (await store.authorityKeys()).length }));
        emit(cmd, { ok: true, dir: w.dir, store: info }, `store of ${w.dir} ready (${info.engine === 'pglite' ? 'embedded, store/' : 'PostgreSQL'}): ${info.tids} TID(s), ${info.keys} authority key(s) in the history`);
        return;
      }
      if (opts.addMasterKey) {
        if (opts.force) throw new UsageError('--add-master-key keeps the existing keys; it does not go with --force');
        const w = await workDir(cmd);
        w.addMasterKey(await passphrase());
        const mk = w.config.checkingMasterKey!;
        emit(cmd, { ok: true, dir: w.dir, checkingMasterKey: mk }, [
          `checking master key ${mk.keyId} (version ${mk.version}) added to ${w.dir}`,
          `cards personalised from now on work in gate mode sym too; cards personalised before stay pki-only`,
        ]);
        return;
      }
      const pass = await passphrase({ confirm: true });
      const [{ WorkDir }, { withBackoffice }] = await Promise.all([import('./workdir.js'), import('./store.js')]);
      const w = WorkDir.init(dir, { operator: opts.operator, suite: opts.suite, passphrase: pass, caName: opts.caName, force: opts.force });
      if (tz) w.setTimeZone(tz);
      // The store: the embedded one in store/ (or the server of --database), with the root key in its history.
      const engine = await withBackoffice(cmd, w, pass, async ({ store }) => store.engine);
      const root = w.config.suite === 'sm9' ? 'kgc.pub' : 'ca.crt';
      emit(cmd, { ok: true, dir: w.dir, operator: w.config.operator, suite: w.config.suite, checkingMasterKey: w.config.checkingMasterKey, store: engine, files: ['eticket.json', root, 'authority.pub', 'terminal.pub', 'keys/', ...(engine === 'pglite' ? ['store/'] : [])] }, [
        `working directory ${w.dir} ready (operator ${w.config.operator}, suite ${w.config.suite}, checking master key ${w.config.checkingMasterKey!.keyId} for gate mode sym)`,
        `  ${root}, authority.pub, terminal.pub: public; keys/: private keys, encrypted with your passphrase; ${engine === 'pglite' ? 'store/: the embedded database' : 'store: the PostgreSQL server'}`,
        `next: eticket card create card.img && eticket card personalize --card card.img`,
      ]);
    });
}

export function registerCard(program: Command): void {
  const card = program
    .command('card')
    .description('card images: create, info, personalize, serve')
    .addHelpText('after', '\nExample:\n  $ eticket card create card.img && eticket card personalize --card card.img && eticket card info --card card.img');

  card
    .command('create <image>')
    .description('manufacture a blank card image (personalise it next)')
    .option('--capacity <bytes>', 'NVM bytes for the application', intArg('capacity'), LIMITS.defaultCapacity)
    .option('--serial <hex>', '8-byte card serial (16 hex digits); random by default')
    .option('--suite <suite>', "crypto suite of the card (default: the working directory's, else rsa)", suiteArg)
    .option('--force', 'overwrite an existing image')
    .addHelpText('after', '\nExample:\n  $ eticket card create card.img --capacity 16384')
    .action(async (image: string, opts: { capacity: number; serial?: string; suite?: SuiteName; force?: boolean }, cmd: Command) => {
      if (existsSync(image) && !opts.force) throw new UsageError(`${image} already exists: choose another name or use --force`);
      // A card for this working directory: an SM9 office personalises SM9 cards only.
      opts.suite ??= existsSync(join(workDirPath(cmd), 'eticket.json')) ? (await workDir(cmd)).config.suite : 'rsa';
      let serial: Uint8Array | undefined;
      if (opts.serial !== undefined) {
        if (!/^[0-9a-fA-F]{16}$/.test(opts.serial)) throw new UsageError('--serial takes 16 hex digits (8 bytes)');
        serial = fromHex(opts.serial);
      }
      const [{ EticketCard }, { FileBackend, MemoryBackend }] = await Promise.all([import('../../card/applet.js'), import('../../card/nvm.js')]);
      // Held while the image is made: --force must not replace an image another process is using.
      const lock = FileLock.tryAcquire(`${resolve(image)}.lock`, `card image ${image}`);
      if (opts.force) rmSync(image, { force: true });
      let c: EticketCard;
      try {
        c = EticketCard.create(new MemoryBackend(), { capacity: opts.capacity, serial, suite: opts.suite });
        FileBackend.createImage(image, c.image);
      } catch (e) {
        if (e instanceof RangeError) throw new UsageError(`${e.message}: give a larger --capacity`);
        throw e;
      } finally {
        lock.release();
      }
      const s = hex(c.persistent.serial);
      emit(cmd, { ok: true, image, serial: s, suite: opts.suite, capacity: opts.capacity }, `card ${s} created in ${image} (${opts.suite}, ${opts.capacity} bytes); next: eticket card personalize --card ${image}`);
    });

  addCardOptions(
    card
      .command('info')
      .description('what the card says about itself: serial, suite, lifecycle, capacity, certificates (a locked card only to this working directory\'s authority: needs the passphrase)')
      .addHelpText('after', '\nWith --json the output carries "credentials", which `eticket issue --credentials` accepts for sealing\nwithout the card at hand.\n\nExample:\n  $ eticket card info --card card.img\n  $ eticket card info --card card.img --json > card.json'),
  ).action(async (opts: CardOptions, cmd: Command) => {
    const { IssuingTerminal } = await import('../issuing.js');
    // A locked card tells its identity only to an authorised issuer: the working directory's authority key (passphrase).
    const w = await workDir(cmd);
    await withCard(cmd, opts, async ({ session, label }) => {
      const issuing = new IssuingTerminal(session, { authorize: w.issuerAuthorizer(() => passphrase()) });
      const info = await issuing.open();
      const cap = await issuing.capacity();
      const creds = await issuing.credentials();
      const keys = await issuing.getData(T.INSTALLED_KEYS);
      emit(
        cmd,
        {
          card: label,
          serial: info.serialHex,
          suite: info.suite,
          lifecycle: info.lifecycle,
          protocolVersion: info.protocolVersion,
          capacity: cap,
          credentials: {
            suite: creds.suite,
            serial: hex(creds.serial),
            encryptionCertificate: creds.encryptionCertificate && hex(creds.encryptionCertificate),
            signingCertificate: creds.signingCertificate && hex(creds.signingCertificate),
            identity: creds.identity,
          },
          installedKeys: installedKeys(keys),
        },
        [
          `card ${info.serialHex} (${label})`,
          `  suite ${info.suite}, protocol v${info.protocolVersion}, ${info.lifecycle === 'OPERATIONAL' ? 'personalised (OPERATIONAL)' : 'blank (PERSONALIZING): run eticket card personalize'}`,
          `  NVM ${cap.totalBytes - cap.freeBytes}/${cap.totalBytes} bytes used, ${cap.freeBytes} free; ${cap.tickets} ticket(s), ${cap.tombstones} tombstone(s)`,
          `  certificates: ${creds.encryptionCertificate ? 'encryption' : '-'}, ${creds.signingCertificate ? 'signature' : '-'}`,
          ...installedKeys(keys).map((k) => `  ${k.kind} key ${k.keyId}`),
        ],
      );
    });
  });

  addCardOptions(
    card
      .command('personalize')
      .description("personalise a blank card with this working directory's CA, authority key, checking-terminal keys and diversified checking key (gate mode sym), then lock it")
      .option('--scope <operator...>', 'operators the installed keys are valid for (default: the working directory\'s operator)')
      .addHelpText('after', '\nNeeds the passphrase (the CA certifies the keys the card generates).\n\nExample:\n  $ eticket card personalize --card card.img\n  $ eticket card personalize --reader "Virtual PCD 00 00"'),
  ).action(async (opts: CardOptions & { scope?: string[] }, cmd: Command) => {
    const [{ personalizeCard }, { MissingMasterKeyError }] = await Promise.all([import('../personalize.js'), import('./workdir.js')]);
    const w = await workDir(cmd);
    const pass = await passphrase();
    const issuer = w.loadCardKeyIssuer(pass);
    const scopes = opts.scope ?? [w.config.operator];
    // A directory made before sym mode still personalises (pki-only cards), but says how to get both modes.
    const masterKeys = w.hasMasterKey ? [w.loadMasterKey(pass)] : [];
    const modes = masterKeys.length ? ['pki', 'sym'] : ['pki'];
    await withCard(cmd, opts, async ({ session, label }) => {
      const creds = await personalizeCard(session, {
        ...issuer,
        authorities: [{ publicKey: w.authorityPublicKey, scopes }],
        terminals: [{ publicKey: w.terminalPublicKey, scopes }],
        masterKeys,
      });
      if (!masterKeys.length) console.error(`eticket: note: ${new MissingMasterKeyError(w.dir).message}; this card works in gate mode pki only`);
      emit(
        cmd,
        { ok: true, card: label, serial: hex(creds.serial), scopes, modes },
        `card ${hex(creds.serial)} personalised for ${scopes.join(', ')}: ${issuer.kgc ? 'identity keys extracted by' : 'keys generated on the card and certified by'} ${w.caSubject}, authority and gate keys installed${masterKeys.length ? `, diversified checking key for ${w.config.operator} (gate mode sym)` : ''}, locked`,
      );
    });
  });

  card
    .command('serve')
    .description("put a card image into pcscd's virtual reader (vsmartcard vpcd) until stopped (Ctrl-C)")
    .requiredOption('--card <image>', 'card image to serve')
    .option('--slot <n>', 'vpcd slot: 0 is "Virtual PCD 00 00", 1 is "Virtual PCD 00 01"', intArg('slot'), 0)
    .option('--host <address>', 'where vpcd listens', '127.0.0.1')
    .addHelpText('after', '\nNeeds pcscd with vsmartcard-vpcd (see tools/pcscd-start.sh). Any PC/SC program then sees the card.\n\nExample:\n  $ eticket card serve --card card.img &\n  $ eticket tickets --reader "Virtual PCD 00 00"')
    .action(async (opts: { card: string; slot: number; host: string }, cmd: Command) => {
    const { VpcdBridge, vpcdPort } = await import('../../card/vpcd.js');
    const icc = await openImage(opts.card);
    const port = vpcdPort(opts.slot);
    const bridge = new VpcdBridge(icc, { host: opts.host, port });
    const serial = hex(icc.persistent.serial);
    // "Inserted" is told once pcscd has powered the card (read its ATR): before that, a PC/SC program started at
    // once may find the reader empty (seen in CI: `readers` right after the line said no card). pcscd powers a card
    // it notices within a poll or two; past POWER_WAIT_MS the line is printed anyway, saying so.
    let stopWaiting: () => void = () => undefined;
    const powered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), POWER_WAIT_MS);
      const off = bridge.on((e) => {
        if ((e.type === 'power' && e.on) || e.type === 'reset') resolve(true);
      });
      stopWaiting = () => {
        clearTimeout(timer);
        off();
      };
    });
    try {
      await bridge.connect();
    } catch (e) {
      stopWaiting();
      throw new TransportError(`cannot reach vpcd at ${opts.host}:${port} (${(e as Error).message}): is pcscd running with vsmartcard-vpcd? (tools/pcscd-start.sh)`, undefined, { cause: e });
    }
    const ready = await powered;
    stopWaiting();
    const reader = `Virtual PCD 00 ${String(opts.slot).padStart(2, '0')}`;
    let apdus = 0;
    bridge.on((e) => {
      if (e.type === 'apdu') apdus++;
    });
    emit(cmd, { event: 'inserted', card: opts.card, serial, reader, port, powered: ready }, `card ${serial} (${opts.card}) is in "${reader}" (vpcd port ${port})${ready ? '' : `, not powered by pcscd within ${POWER_WAIT_MS / 1000} s`}; Ctrl-C to take it out`);
    const reason = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('stopped'));
      process.once('SIGTERM', () => resolve('stopped'));
      bridge.on((e) => {
        if (e.type === 'removed' && e.reason !== 'closed') resolve(e.reason);
      });
    });
    await bridge.close();
    if (reason !== 'stopped') throw new TransportError(`${reason}: card ${serial} is out of the reader`);
    if (!globals(cmd).json) console.log(`card ${serial} taken out of "${reader}" after ${apdus} APDU(s)`);
    else console.log(JSON.stringify({ event: 'removed', serial, apdus }));
  });
}

/** How long `card serve` waits for pcscd to power the card it inserted before it says it is in (ms). */
const POWER_WAIT_MS = 5000;

/** GET DATA INSTALLED_KEYS as the CLI prints it (sdk/commands/get-data.ts decodes it). */
function installedKeys(data: Uint8Array | undefined): { kind: string; keyId: string }[] {
  const label = { authority: 'authority', terminal: 'terminal', diversified: 'checking (sym)' } as const;
  return data ? decodeAnswer('GET DATA', () => decodeInstalledKeys(data)).map((k) => ({ kind: label[k.kind], keyId: hex(k.keyId) })) : [];
}
