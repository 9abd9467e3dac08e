// `eticket seller add | list | revoke` and `eticket terminal add | list`: API clients registered by the
// operator, each with its own signing key certified by the operator's CA (RSA) or an SM9 identity under its KGC.
// The client's credential file (its private key sealed with $ETICKET_CLIENT_PASSPHRASE) is handed to it.

import { existsSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { hex } from '../../sdk/bytes.js';
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
}

/** Make the client's key, certify it (CA) or extract it (KGC), record the client, write its credential file. */
async function addClient(cmd: Command, w: WorkDir, c: NewClient): Promise<ClientRecord> {
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(c.id)) throw new UsageError('a client id is 1-32 of A-Z a-z 0-9 _ . -');
  if (existsSync(c.out) && !c.force) throw new UsageError(`${c.out} exists: choose another --out or add --force`);
  const clientPass = clientPassphrase();
  const pass = await passphrase();
  const [{ RsaPrivateKey }, { keyId }, { verifyClientCertificate }, { makeCredential }, { withBackoffice }] = await Promise.all([
    import('../../sdk/crypto/rsa.js'),
    import('../../sdk/crypto/suite.js'),
    import('../../sdk/roles/ca.js'),
    import('../../sdk/roles/client-credential.js'),
    backoffice(),
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
  const credential = makeCredential({ clientId: c.id, role: c.role, operator: op, suite: w.config.suite, certificate: certificate && hex(certificate), identity }, privateKey, clientPass);
  const tmp = `${c.out}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(credential, null, 2) + '\n', { mode: 0o600 });
  return withBackoffice(cmd, w, pass, async ({ store }) => {
    await store.addClient({ clientId: c.id, role: c.role, name: c.name, operator: op, suite: w.config.suite, publicKey, certificate, identity, keyId: hex(keyId(publicKey)), kind: c.kind, station: c.station });
    renameSync(tmp, c.out); // the credential exists only for a registered client
    return (await store.client(c.id))!;
  }).finally(() => {
    // Registration failed (the id is taken, the store is busy): no credential for a client that does not exist.
    if (existsSync(tmp)) unlinkSync(tmp);
  });
}

function clientJson(c: ClientRecord): Record<string, unknown> {
  return { clientId: c.clientId, role: c.role, name: c.name, suite: c.suite, keyId: c.keyId, status: c.status, kind: c.kind, station: c.station, identity: c.identity, created: c.createdAt?.toISOString() };
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
    .addHelpText('after', '\nExample:\n  $ ETICKET_CLIENT_PASSPHRASE=... eticket terminal add gate-7 --kind gate --station BJS --out gate-7.json')
    .action(async (id: string, opts: { kind: string; station?: string; name?: string; out: string; force?: boolean }, cmd: Command) => {
      if (!['issuing', 'gate', 'inspector'].includes(opts.kind)) throw new UsageError('--kind is issuing, gate or inspector');
      const c = await addClient(cmd, await workDir(cmd), { id, role: 'terminal', name: opts.name ?? id, out: opts.out, force: opts.force, kind: opts.kind as NewClient['kind'], station: opts.station });
      emit(cmd, { ok: true, client: clientJson(c), credential: opts.out }, `${opts.kind} terminal ${c.clientId} registered (key ${c.keyId}); credential in ${opts.out}`);
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
