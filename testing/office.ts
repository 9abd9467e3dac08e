// A test back office over a World's keys, served over HTTP on a free port, with offline gates around it (each
// its own registered client key, journal, denylist and uploader) and sellers: what the gate tests and the
// simulation wire together. Gates reach the office only over HTTP, as in production.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../backoffice/http/app.js';
import { Backoffice, type KeyCustody } from '../backoffice/service.js';
import type { Store } from '../backoffice/store/store.js';
import { loadNetwork, type NetworkInput } from '../backoffice/trips.js';
import { BackofficeClient } from '../host/backoffice-client.js';
import type { CheckingTerminalConfig } from '../host/checking.js';
import { DenylistCache } from '../host/denylist.js';
import { GateJournal, type JournalOptions } from '../host/journal.js';
import { JournalUploader, type UploaderOptions } from '../host/journal-uploader.js';
import { OfflineGate } from '../host/offline-gate.js';
import { hex } from '../sdk/bytes.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import { keyId, type Signer } from '../sdk/crypto/suite.js';
import { InvalidInputError } from '../sdk/errors.js';
import type { World } from './world.js';

/** The back office's key custody made of a test World's keys (root authority key, CA or KGC, master key). */
export function worldCustody(world: World): KeyCustody {
  return {
    operator: world.operator,
    suite: world.suite,
    rootPublicKey: world.keys.authorityKey.publicKey,
    root: () => world.keys.authorityKey,
    signing: () => {
      throw new InvalidInputError('the test office has no rotated keys');
    },
    cardTrust: world.keys.cardTrust,
    masterKeys: () => [world.masterKey],
  };
}

/** A client key for `id` (RSA suite only: SM9 clients would get a KGC identity), certified by the World's CA. */
export function clientKey(world: World, id: string, role: 'seller' | 'terminal', key: RsaPrivateKey = RsaPrivateKey.generate(2048)): { signer: Signer; certificate: Uint8Array } {
  if (world.suite !== 'rsa' || !world.keys.ca) throw new InvalidInputError('test clients are made for the RSA suite');
  return { signer: key, certificate: world.keys.ca.certifyClientKey(id, role, key.publicKey) };
}

export interface TestGate {
  id: string;
  station: string;
  signer: Signer;
  client: BackofficeClient;
  journal: GateJournal;
  denylist: DenylistCache;
  uploader: JournalUploader;
  gate: OfflineGate;
}

export class TestOffice {
  readonly bo: Backoffice;
  private app?: FastifyInstance;
  url = '';
  readonly gates: TestGate[] = [];

  constructor(
    readonly world: World,
    readonly store: Store,
    private readonly dir: string,
  ) {
    this.bo = new Backoffice(store, worldCustody(world), () => world.now);
  }

  /** Serve the API on 127.0.0.1 (a free port unless `port` is given). */
  async listen(port = 0): Promise<string> {
    if (this.app) return this.url;
    await this.bo.ensureRootKey(new Date((this.world.now - 86400) * 1000));
    this.app = await buildApp({ bo: this.bo }, { log: () => undefined });
    this.url = await this.app.listen({ host: '127.0.0.1', port });
    return this.url;
  }

  /** Stop serving (the gates go on offline). */
  async stopServing(): Promise<void> {
    await this.app?.close();
    this.app = undefined;
  }

  async register(id: string, role: 'seller' | 'terminal', extra: { station?: string; kind?: 'gate' | 'issuing' } = {}, key?: RsaPrivateKey): Promise<Signer> {
    const { signer, certificate } = clientKey(this.world, id, role, key);
    await this.store.addClient({ clientId: id, role, name: id, operator: this.world.operator, suite: this.world.suite, publicKey: signer.publicKey, certificate, keyId: hex(keyId(signer.publicKey)), kind: extra.kind, station: extra.station });
    return signer;
  }

  /** Register a client whose private key lives elsewhere (a simulation worker's gate). */
  async registerPublicKey(id: string, role: 'seller' | 'terminal', publicKey: Uint8Array, extra: { station?: string; kind?: 'gate' | 'issuing' } = {}): Promise<void> {
    const certificate = this.world.keys.ca?.certifyClientKey(id, role, publicKey);
    await this.store.addClient({ clientId: id, role, name: id, operator: this.world.operator, suite: this.world.suite, publicKey, certificate, keyId: hex(keyId(publicKey)), kind: extra.kind, station: extra.station });
  }

  client(id: string, signer: Signer): BackofficeClient {
    return new BackofficeClient({ url: this.url, clientId: id, signer, timeoutMs: 10_000 });
  }

  async loadNetwork(input: NetworkInput): Promise<void> {
    await loadNetwork(this.store, this.world.operator, input);
  }

  /** A registered gate with its own journal directory, denylist file and uploader (not started). */
  async addGate(id: string, station: string, options: { mode?: 'pki' | 'sym'; journal?: JournalOptions; uploader?: UploaderOptions; terminal?: Partial<CheckingTerminalConfig> } = {}): Promise<TestGate> {
    const signer = await this.register(id, 'terminal', { station, kind: 'gate' });
    const client = this.client(id, signer);
    const gdir = join(this.dir, `gate-${id}`);
    mkdirSync(gdir, { recursive: true });
    const journal = GateJournal.openDir(join(gdir, 'journal'), options.journal);
    const denylist = new DenylistCache({ operator: this.world.operator, suite: this.world.suite, roots: [this.world.keys.authorityKey.publicKey] }, join(gdir, 'denylist.json'));
    const uploader = new JournalUploader(journal, [{ gateId: id, client, signer }], denylist, { intervalMs: 50, denylistIntervalMs: 100, ...options.uploader });
    const w = this.world;
    const terminal: CheckingTerminalConfig = {
      mode: options.mode ?? 'sym',
      masterKeys: [w.masterKey],
      keys: w.keys.terminalKeys,
      authorities: [w.keys.authorityKey.publicKey],
      cardTrust: w.keys.cardTrust,
      gateId: id,
      station,
      clock: () => w.now,
      ...options.terminal,
    };
    const g: TestGate = { id, station, signer, client, journal, denylist, uploader, gate: new OfflineGate({ terminal, journal, denylist }) };
    this.gates.push(g);
    return g;
  }

  async close(): Promise<void> {
    for (const g of this.gates) {
      await g.uploader.stop();
      await g.journal.close();
    }
    await this.stopServing();
  }
}
