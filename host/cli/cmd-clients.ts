// `eticket seller add | list | revoke` and `eticket terminal add | list`: API clients registered by the
// operator, each with its own signing key certified by the operator's CA (RSA) or an SM9 identity under its KGC.
// The client's credential file (its private key sealed with $ETICKET_CLIENT_PASSPHRASE) is handed to it.

import { existsSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { hex } from '../../sdk/bytes.js';
import type { TotpAlgorithm, TotpParameters } from '../../sdk/crypto/totp.js';
import type { PermissionGrant } from '../../backoffice/store/holders.js';
import type { ClientRecord } from '../../backoffice/store/store.js';
import { emit, passphrase, UsageError, workDir } from './context.js';
import type { WorkDir } from './workdir.js';

/** The store and its back office: loaded by the action that opens them, never by --help (host/cli/main.ts). */
const backoffice = () => import('./store.js');

function clientPassphrase(): string {
  const p = process.env.ETICKET_CLIENT_PASSPHRASE;
  if (!p) throw new UsageError("set ETICKET_CLIENT_PASSPHRASE: it protects the client's private key in its credential file (hand it over separately)");
  return p;
}

interface NewClient {
  id: string;
  role: 'seller' | 'terminal';
  name: string;
  out: string;
  force?: boolean;
  kind?: 'issuing' | 'gate' | 'inspector';
  station?: string;
  /** Gates and inspectors: the TOTP they share with the service for real-name reads. */
  totp?: TotpParameters;
}

/** Make the client's key, certify it (CA) or extract it (KGC), record the client, write its credential file. */
async function addClient(cmd: Command, w: WorkDir, c: NewClient): Promise<ClientRecord> {
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(c.id)) throw new UsageError('a client id is 1-32 of A-Z a-z 0-9 _ . -');
  if (existsSync(c.out) && !c.force) throw new UsageError(`${c.out} exists: choose another --out or add --force`);
  const clientPass = clientPassphrase();
  const pass = await passphrase();
  const [{ RsaPrivateKey }, { keyId }, { verifyClientCertificate }, { makeCredential }, { withBackoffice }, { RealNameService }] = await Promise.all([
    import('../../sdk/crypto/rsa.js'),
    import('../../sdk/crypto/suite.js'),
    import('../../sdk/roles/ca.js'),
    import('../../sdk/roles/client-credential.js'),
    backoffice(),
    import('../../backoffice/realname.js'),
  ]);
  const op = w.config.operator;
  let publicKey: Uint8Array;
  let privateKey: Uint8Array;
  let certificate: Uint8Array | undefined;
  let identity: string | undefined;
  if (w.config.suite === 'sm9') {
    // Identity-based: the client's public key is its identity under the KGC; no certificate is needed.
    const kgc = w.loadCardKeyIssuer(pass).kgc!;
    identity = `eticket:${c.role}:${op}:${c.id}`;
    privateKey = kgc.extractSigningKey(identity);
    publicKey = kgc.signingPublicKey(identity);
  } else {
    const ca = w.loadCa(pass);
    const key = RsaPrivateKey.generate(2048);
    certificate = ca.certifyClientKey(c.id, c.role, key.publicKey);
    publicKey = verifyClientCertificate(ca.certificateDer, certificate, c.role, c.id).publicKey;
    privateKey = key.toPkcs8();
  }
  // A checking terminal also gets the key holder answers are sealed to, and a TOTP secret shared with the service.
  let realName: { encryptionKey: Uint8Array; encryptionPublicKey: Uint8Array; encryptionCertificate?: Uint8Array; totp: { secret: Uint8Array; parameters: TotpParameters } } | undefined;
  if (c.totp) {
    const totp = { secret: RealNameService.newTotpSecret(c.totp), parameters: c.totp };
    if (w.config.suite === 'sm9') {
      const kgc = w.loadCardKeyIssuer(pass).kgc!;
      realName = { encryptionKey: kgc.extractEncryptionKey(identity!), encryptionPublicKey: kgc.encryptionPublicKey(identity!), totp };
    } else {
      const ca = w.loadCa(pass);
      const key = RsaPrivateKey.generate(2048);
      const encryptionCertificate = ca.certifyTerminalEncryptionKey(c.id, key.publicKey);
      const encryptionPublicKey = verifyClientCertificate(ca.certificateDer, encryptionCertificate, 'terminal', c.id, new Date(), 'encryption').publicKey;
      realName = { encryptionKey: key.toPkcs8(), encryptionPublicKey, encryptionCertificate, totp };
    }
  }
  const credential = makeCredential({ clientId: c.id, role: c.role, operator: op, suite: w.config.suite, certificate: certificate && hex(certificate), identity }, privateKey, clientPass, realName);
  const tmp = `${c.out}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(credential, null, 2) + '\n', { mode: 0o600 });
  return withBackoffice(cmd, w, pass, async ({ store, bo }) => {
    const record = { clientId: c.id, role: c.role, name: c.name, operator: op, suite: w.config.suite, publicKey, certificate, identity, keyId: hex(keyId(publicKey)), kind: c.kind, station: c.station };
    if (realName) await bo.realName.registerTerminal({ ...record, encryptionKey: realName.encryptionPublicKey, encryptionCertificate: realName.encryptionCertificate }, realName.totp);
    else await store.addClient(record);
    renameSync(tmp, c.out); // the credential exists only for a registered client
    return (await store.client(c.id))!;
  }).finally(() => {
    // Registration failed (the id is taken, the store is busy): no credential for a client that does not exist.
    if (existsSync(tmp)) unlinkSync(tmp);
  });
}

function clientJson(c: ClientRecord): Record<string, unknown> {
  return { clientId: c.clientId, role: c.role, name: c.name, suite: c.suite, keyId: c.keyId, status: c.status, kind: c.kind, station: c.station, identity: c.identity, realName: c.encryptionKey ? true : undefined, created: c.createdAt?.toISOString() };
}

const KIND_NAMES: Record<string, number> = { rail: 1, metro: 2, bus: 3, event: 4 };

/** A ticket kind (TF_A 92) by name (rail, metro, bus, event) or number 0..255. */
export function kindArg(v: string): number {
  const k = KIND_NAMES[v.toLowerCase()] ?? (/^\d{1,3}$/.test(v) ? Number(v) : NaN);
  if (!Number.isInteger(k) || k < 0 || k > 255) throw new InvalidArgumentError('a ticket kind is rail, metro, bus, event or 0..255');
  return k;
}

export function kindName(k: number | undefined): string {
  return k === undefined ? 'any kind' : (Object.entries(KIND_NAMES).find(([, v]) => v === k)?.[0] ?? `kind ${k}`);
}

function grantLine(g: PermissionGrant): string {
  const parts = [g.operator ? `operator ${g.operator}` : undefined, g.station ? `station ${g.station}` : undefined, g.kind !== undefined ? kindName(g.kind) : undefined].filter(Boolean);
  return `#${g.grantId} ${g.clientId}: ${parts.length ? parts.join(', ') : 'any ticket'}`;
}

function grantJson(g: PermissionGrant): Record<string, unknown> {
  return { grantId: g.grantId, clientId: g.clientId, operator: g.operator, station: g.station, kind: g.kind, created: g.createdAt?.toISOString() };
}

async function totpOptions(opts: { totpAlgorithm: string; totpDigits: string; totpPeriod: string }): Promise<TotpParameters> {
  const { checkTotpParameters, TOTP_ALGORITHMS } = await import('../../sdk/crypto/totp.js');
  const algorithm = opts.totpAlgorithm.toUpperCase().replace('-', '') as TotpAlgorithm;
  if (!TOTP_ALGORITHMS.includes(algorithm)) throw new UsageError('--totp-algorithm is SHA1, SHA256 or SHA512');
  const p = { algorithm, digits: Number(opts.totpDigits), period: Number(opts.totpPeriod) };
  try {
    checkTotpParameters(p);
  } catch (e) {
    throw new UsageError(`--totp-*: ${(e as Error).message}`);
  }
  return p;
}

export function registerClients(program: Command): void {
  const seller = program
    .command('seller')
    .description('third-party sellers: register (own key, certified by the operator CA or an SM9 identity), list, revoke')
    .addHelpText('after', '\nExample:\n  $ ETICKET_CLIENT_PASSPHRASE=... eticket seller add acme --name "Acme Travel" --out acme.json\n  $ eticket report sales --seller acme');
  seller
    .command('add <id>')
    .description('register a seller and write its credential file (its private key sealed with $ETICKET_CLIENT_PASSPHRASE)')
    .option('--name <name>', 'display name (default: the id)')
    .requiredOption('--out <file>', 'credential file to hand to the seller')
    .option('--force', 'overwrite --out')
    .addHelpText('after', '\nExample:\n  $ ETICKET_CLIENT_PASSPHRASE=... eticket seller add acme --name "Acme Travel" --out acme.json')
    .action(async (id: string, opts: { name?: string; out: string; force?: boolean }, cmd: Command) => {
      const c = await addClient(cmd, await workDir(cmd), { id, role: 'seller', name: opts.name ?? id, out: opts.out, force: opts.force });
      emit(cmd, { ok: true, client: clientJson(c), credential: opts.out }, `seller ${c.clientId} registered (key ${c.keyId}${c.identity ? `, identity ${c.identity}` : ', certified by the operator CA'}); credential in ${opts.out}`);
    });
  seller
    .command('list')
    .description('registered sellers')
    .addHelpText('after', '\nExample:\n  $ eticket seller list --json')
    .action(async (_o: unknown, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const list = await store.clients('seller');
        emit(cmd, { sellers: list.map(clientJson) }, list.length ? list.map((c) => `${c.clientId} ${c.status} key ${c.keyId} "${c.name}"`) : 'no sellers registered');
      });
    });
  seller
    .command('revoke <id>')
    .description('refuse every further request of a seller (its tickets and bills stay)')
    .addHelpText('after', '\nExample:\n  $ eticket seller revoke acme')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        if (!(await store.setClientStatus(id, 'revoked'))) throw new UsageError(`no client ${id}`);
        emit(cmd, { ok: true, clientId: id, status: 'revoked' }, `${id} revoked`);
      });
    });

  const terminal = program
    .command('terminal')
    .description('terminals that call the API (issuing terminals, gates, inspectors): register, list')
    .addHelpText('after', '\nExample:\n  $ ETICKET_CLIENT_PASSPHRASE=... eticket terminal add kiosk-1 --kind issuing --station BJS --out kiosk-1.json');
  terminal
    .command('add <id>')
    .description('register a terminal and write its credential file')
    .option('--kind <kind>', 'issuing, gate or inspector', 'issuing')
    .option('--station <code>', 'where it stands')
    .option('--name <name>', 'display name (default: the id)')
    .requiredOption('--out <file>', 'credential file to install on the terminal')
    .option('--force', 'overwrite --out')
    .option('--totp-algorithm <alg>', 'gates and inspectors: HMAC of the TOTP shared with the service (SHA1, SHA256, SHA512)', 'SHA1')
    .option('--totp-digits <n>', 'gates and inspectors: digits of a TOTP code (6-8)', '6')
    .option('--totp-period <s>', 'gates and inspectors: TOTP time step in seconds; one holder read per step (a busy gate wants a short one)', '30')
    .addHelpText(
      'after',
      '\nA gate or inspector also gets, for real-name tickets, an encryption key (holder answers are sealed to it;\nRSA: certified by the operator CA) and a TOTP secret shared with the service (RFC 6238), both in its\ncredential file; it reads holder data only where `eticket terminal grant` permits.\n\nExample:\n  $ ETICKET_CLIENT_PASSPHRASE=... eticket terminal add gate-7 --kind gate --station BJS --out gate-7.json\n  $ eticket terminal grant gate-7 --station BJS',
    )
    .action(async (id: string, opts: { kind: string; station?: string; name?: string; out: string; force?: boolean; totpAlgorithm: string; totpDigits: string; totpPeriod: string }, cmd: Command) => {
      if (!['issuing', 'gate', 'inspector'].includes(opts.kind)) throw new UsageError('--kind is issuing, gate or inspector');
      const checking = opts.kind === 'gate' || opts.kind === 'inspector';
      const totp = checking ? await totpOptions(opts) : undefined;
      const c = await addClient(cmd, await workDir(cmd), { id, role: 'terminal', name: opts.name ?? id, out: opts.out, force: opts.force, kind: opts.kind as NewClient['kind'], station: opts.station, totp });
      emit(
        cmd,
        { ok: true, client: clientJson(c), credential: opts.out, ...(totp ? { totp: { algorithm: totp.algorithm, digits: totp.digits, period: totp.period } } : {}) },
        `${opts.kind} terminal ${c.clientId} registered (key ${c.keyId}${totp ? `; real-name: encryption key and TOTP ${totp.algorithm}/${totp.digits} digits/${totp.period} s` : ''}); credential in ${opts.out}${totp ? `\nnext: eticket terminal grant ${c.clientId} --station … (what it may check)` : ''}`,
      );
    });
  terminal
    .command('grant <id>')
    .description('the permission table: let a gate or inspector read the holder data of tickets of an operator, a station (origin or destination) and/or a kind')
    .option('--operator <code>', 'tickets of this operator')
    .option('--station <code>', 'tickets from or to this station')
    .option('--kind <kind>', 'tickets of this kind (rail, metro, bus, event or 0..255)', kindArg)
    .option('--any', 'every ticket of this back office (give it explicitly: it is the widest grant)')
    .addHelpText('after', '\nA grant matches a ticket when each option given matches; a terminal reads a ticket when one of its grants\nmatches. Granting the same thing twice keeps one grant.\n\nExample:\n  $ eticket terminal grant gate-7 --station BJS\n  $ eticket terminal grant insp-2 --operator CR --kind rail')
    .action(async (id: string, opts: { operator?: string; station?: string; kind?: number; any?: boolean }, cmd: Command) => {
      const some = opts.operator !== undefined || opts.station !== undefined || opts.kind !== undefined;
      if (some === Boolean(opts.any)) throw new UsageError(opts.any ? '--any stands alone' : 'grant what? give --operator, --station and/or --kind (or --any for every ticket)');
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const c = await store.client(id);
        if (!c || c.role !== 'terminal' || (c.kind !== 'gate' && c.kind !== 'inspector')) throw new UsageError(`no gate or inspector ${id} is registered (\`eticket terminal list\`)`);
        const { grant, created } = await store.holders.grant(id, { operator: opts.operator, station: opts.station, kind: opts.kind });
        emit(cmd, { ok: true, created, grant: grantJson(grant) }, `${created ? 'granted' : 'already granted'}: ${grantLine(grant)}`);
      });
    });
  terminal
    .command('grants [id]')
    .description('the permission table (of one terminal, or all)')
    .addHelpText('after', '\nExample:\n  $ eticket terminal grants gate-7 --json')
    .action(async (id: string | undefined, _o: unknown, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const list = await store.holders.grants(id);
        emit(cmd, { grants: list.map(grantJson) }, list.length ? list.map(grantLine) : 'no grants');
      });
    });
  terminal
    .command('ungrant <id> <grantId>')
    .description('remove one grant of the permission table')
    .addHelpText('after', '\nExample:\n  $ eticket terminal ungrant gate-7 3')
    .action(async (id: string, grantId: string, _o: unknown, cmd: Command) => {
      if (!/^\d{1,9}$/.test(grantId)) throw new UsageError('a grant id is a number (`eticket terminal grants`)');
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        if (!(await store.holders.revokeGrant(id, Number(grantId)))) throw new UsageError(`${id} has no grant #${grantId}`);
        emit(cmd, { ok: true, clientId: id, grantId: Number(grantId) }, `grant #${grantId} of ${id} removed`);
      });
    });
  terminal
    .command('list')
    .description('registered terminals')
    .addHelpText('after', '\nExample:\n  $ eticket terminal list')
    .action(async (_o: unknown, cmd: Command) => {
      const [w, { withBackoffice }] = await Promise.all([workDir(cmd), backoffice()]);
      await withBackoffice(cmd, w, undefined, async ({ store }) => {
        const list = await store.clients('terminal');
        emit(cmd, { terminals: list.map(clientJson) }, list.length ? list.map((c) => `${c.clientId} ${c.kind} ${c.station ?? '-'} ${c.status} key ${c.keyId}`) : 'no terminals registered');
      });
    });
}
