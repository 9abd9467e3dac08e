// The CLI's working directory: eticket.json, the CA certificate, public keys in the clear, private keys
// encrypted in keys/ (sdk KeyStore), and the embedded store (store/, see host/cli/store.ts). `eticket init` writes it.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFileDurably } from '../../sdk/durable-file.js';
import { join, resolve } from 'node:path';
import { nodeForge } from '../../sdk/forge.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { InvalidInputError } from '../../sdk/errors.js';
import { AuthenticationServer } from '../../sdk/roles/authority.js';
import { CertificateAuthority } from '../../sdk/roles/ca.js';
import { KeyStore, RSA_PRIVATE_KIND, type OpenedSecret } from '../../sdk/roles/keystore.js';
import { TerminalKeys } from '../../sdk/roles/terminal-keys.js';
import { TicketServer } from '../../sdk/roles/ticket-server.js';
import type { CardTrust } from '../../sdk/roles/trust.js';
import { KeyGenerationCentre, type KgcMasterKeys } from '../../sdk/roles/kgc.js';
import { sm9Provider } from '../../sdk/crypto/sm9-suite.js';
import type { Signer } from '../../sdk/crypto/suite.js';
import { concat, hex } from '../../sdk/bytes.js';
import { masterKeyId, SYM_KEY_LENGTH } from '../../sdk/crypto/symmetric.js';
import {
  cardTrustFromFile,
  copyTerminalKeys,
  decodeKgcPublicKeys,
  encodeKgcPublicKeys,
  fromPem,
  loadMasterKey,
  loadTerminalKeys,
  PEM_LABEL,
  SECRET_KIND,
  storeMasterKey,
  toPem,
  type KgcPublicKeys,
} from '../../sdk/roles/key-files.js';
import type { OperatorMasterKey } from '../../sdk/roles/sym-receipts.js';
import { HOLDER_MASTER_KEY_LENGTH, holderMasterKeyId, type HolderVault } from '../../backoffice/realname.js';
import { TlvMap, tlv } from '../../sdk/tlv.js';
import type { SuiteName } from '../../sdk/spec.js';
import type { GateMode } from '../checking.js';
import { GATE_FILE, GATE_FORMAT, validateGateFile, type GateFile } from '../gate-config.js';

export const WORKDIR_FORMAT = 'eticket-workdir/1';
const KGC_KIND = 'sm9-kgc-master';
const SM9_SIGNER = SECRET_KIND.sm9Signer;
const HOLDER_KIND = 'aes256-holder-master';
const holderKeyName = (id: string) => `holder-master-${id}`;

/** A working directory made before real-name tickets: it has no holder master key yet. */
export class MissingHolderKeyError extends InvalidInputError {
  constructor(dir: string) {
    super(`working directory ${dir} has no holder master key (real-name tickets): run \`eticket init --add-holder-key\``);
  }
}

/** A working directory made before gate mode sym: it has no checking master key yet. */
export class MissingMasterKeyError extends InvalidInputError {
  constructor(dir: string) {
    super(`working directory ${dir} has no checking master key (gate mode sym): run \`eticket init --add-master-key\`, then personalise new cards`);
  }
}

function encodeKgcPrivate(k: KgcMasterKeys): Uint8Array {
  return concat(tlv(0x80, k.signMasterPrivateKey), tlv(0x81, k.signMasterPublicKey), tlv(0x82, k.encMasterPrivateKey), tlv(0x83, k.encMasterPublicKey));
}

function decodeKgcPrivate(b: Uint8Array): KgcMasterKeys {
  const m = TlvMap.parse(b, { allowed: [0x80, 0x81, 0x82, 0x83] });
  return { signMasterPrivateKey: m.require(0x80), signMasterPublicKey: m.require(0x81), encMasterPrivateKey: m.require(0x82), encMasterPublicKey: m.require(0x83) };
}

export interface WorkConfig {
  format: typeof WORKDIR_FORMAT;
  operator: string;
  suite: SuiteName;
  created: string;
  caName: string;
  /** Gate mode sym: the operator's checking master key; the key itself is in keys/, encrypted. */
  checkingMasterKey?: { version: number; keyId: string };
  /** The operator's time zone (IANA name): service dates at gates, default validity (host/cli/timezone.ts). */
  timeZone?: string;
  /**
   * Real-name tickets: the holder master keys by id (files keys/holder-master-<id>), the current one first in
   * use for new records. Older ones stay until `eticket realname rotate-key` has re-sealed what they sealed.
   */
  holderMasterKeys?: { current: string; keys: string[] };
}

const pem = toPem;
const unpem = fromPem;

export class WorkDir {
  readonly keys: KeyStore;

  private constructor(readonly dir: string, readonly config: WorkConfig) {
    this.keys = new KeyStore(join(dir, 'keys'));
  }

  /** Create the back office: CA (RSA) or KGC (SM9), authority key (1/6), checking-terminal keys (4/5), all under `passphrase`. */
  static init(dir: string, options: { operator: string; suite: SuiteName; passphrase: string; caName?: string; force?: boolean }): WorkDir {
    dir = resolve(dir);
    if (existsSync(join(dir, 'eticket.json')) && !options.force) {
      throw new InvalidInputError(`${dir} is already an eticket working directory (eticket.json exists): use another --dir, or --force to replace its keys`);
    }
    new TicketServer(options.operator); // validates the operator code before any key is made
    mkdirSync(dir, { recursive: true });
    const config: WorkConfig = { format: WORKDIR_FORMAT, operator: options.operator, suite: options.suite, created: new Date().toISOString(), caName: options.caName ?? `${options.operator} e-ticket CA` };
    const w = new WorkDir(dir, config);
    if (options.suite === 'sm9') {
      // Identity-based: the KGC's master keys replace the CA; identities name the authority and the gates.
      const kgc = KeyGenerationCentre.create();
      const pass = options.passphrase;
      w.keys.putBytes('kgc', KGC_KIND, encodeKgcPrivate(kgc.keys), pass);
      const authority = kgc.extractSigningKey(`eticket:authority:${options.operator}`);
      const terminalId = `eticket:terminal:${options.operator}`;
      w.keys.putBytes('authority', SM9_SIGNER, authority, pass);
      w.keys.putBytes('terminal-encryption', SECRET_KIND.sm9Decrypter, kgc.extractEncryptionKey(terminalId), pass);
      w.keys.putBytes('terminal-signature', SM9_SIGNER, kgc.extractSigningKey(terminalId), pass);
      writeFileSync(join(dir, 'kgc.pub'), pem(PEM_LABEL.kgcPublicKeys, encodeKgcPublicKeys({ sign: kgc.signMasterPublicKey, enc: kgc.encMasterPublicKey })));
      writeFileSync(join(dir, 'authority.pub'), pem(PEM_LABEL.publicKey, kgc.signingPublicKey(`eticket:authority:${options.operator}`)));
      writeFileSync(join(dir, 'terminal.pub'), pem(PEM_LABEL.terminalKey, new TerminalKeys(kgc.decrypter(terminalId), kgc.signer(terminalId)).publicKey));
    } else {
      const ca = CertificateAuthority.create(config.caName);
      const authority = RsaPrivateKey.generate(2048);
      const terminalEnc = RsaPrivateKey.generate(2048);
      const terminalSig = RsaPrivateKey.generate(2048);
      w.keys.putRsa('ca', ca.key, options.passphrase);
      w.keys.putRsa('authority', authority, options.passphrase);
      w.keys.putRsa('terminal-encryption', terminalEnc, options.passphrase);
      w.keys.putRsa('terminal-signature', terminalSig, options.passphrase);
      writeFileSync(join(dir, 'ca.crt'), pem(PEM_LABEL.certificate, ca.certificateDer));
      writeFileSync(join(dir, 'authority.pub'), pem(PEM_LABEL.publicKey, authority.publicKey));
      writeFileSync(join(dir, 'terminal.pub'), pem(PEM_LABEL.terminalKey, new TerminalKeys(terminalEnc, terminalSig).publicKey));
    }
    w.createMasterKey(options.passphrase);
    w.newHolderKey(options.passphrase);
    return w;
  }

  /** A new holder master key (AES-256), made current; the previous ones stay listed until retired. */
  private newHolderKey(passphrase: string): string {
    const key = new Uint8Array(randomBytes(HOLDER_MASTER_KEY_LENGTH));
    const id = holderMasterKeyId(key);
    this.keys.putBytes(holderKeyName(id), HOLDER_KIND, key, passphrase);
    const prev = this.config.holderMasterKeys?.keys ?? [];
    this.config.holderMasterKeys = { current: id, keys: [id, ...prev.filter((k) => k !== id)] };
    this.writeConfig();
    return id;
  }

  get hasHolderKey(): boolean {
    return this.config.holderMasterKeys !== undefined;
  }

  /** Give a working directory made before real-name tickets its holder master key (same passphrase as its keys). */
  addHolderKey(passphrase: string): string {
    if (this.config.holderMasterKeys) throw new InvalidInputError(`working directory ${this.dir} already has holder master key ${this.config.holderMasterKeys.current}`);
    this.loadAuthority(passphrase);
    return this.newHolderKey(passphrase);
  }

  /** Rotation, first half: a new current holder master key. The caller re-seals, then retires the old ones. */
  rotateHolderKey(passphrase: string): { previous: string[]; current: string } {
    if (!this.config.holderMasterKeys) throw new MissingHolderKeyError(this.dir);
    this.loadHolderKey(this.config.holderMasterKeys.current, passphrase); // the passphrase must open the current one
    const previous = [...this.config.holderMasterKeys.keys];
    return { previous, current: this.newHolderKey(passphrase) };
  }

  /** Rotation, second half: delete the files of master keys nothing is sealed under any more (crypto-shredding). */
  retireHolderKeys(ids: string[]): string[] {
    const hk = this.config.holderMasterKeys;
    if (!hk) return [];
    const gone = ids.filter((id) => id !== hk.current && hk.keys.includes(id));
    for (const id of gone) this.keys.remove(holderKeyName(id));
    this.config.holderMasterKeys = { current: hk.current, keys: hk.keys.filter((k) => !gone.includes(k)) };
    this.writeConfig();
    return gone;
  }

  private loadHolderKey(id: string, passphrase: string): Uint8Array {
    const key = this.keys.getBytes(holderKeyName(id), passphrase, HOLDER_KIND);
    if (key.length !== HOLDER_MASTER_KEY_LENGTH || holderMasterKeyId(key) !== id) throw new InvalidInputError(`keys/${holderKeyName(id)}.secret.json is not holder master key ${id}`);
    return key;
  }

  /**
   * The holder master keys as the back office uses them. A key it does not know yet (rotated by another process
   * sharing this directory) is looked up again in eticket.json and keys/ when first asked for.
   */
  holderVault(passphrase: string): HolderVault {
    if (!this.config.holderMasterKeys) throw new MissingHolderKeyError(this.dir);
    const cache = new Map<string, Uint8Array>();
    const get = (id: string): Uint8Array | undefined => {
      let k = cache.get(id);
      if (k) return k;
      if (!this.config.holderMasterKeys!.keys.includes(id)) this.reloadConfig();
      if (!this.config.holderMasterKeys?.keys.includes(id) || !this.keys.has(holderKeyName(id))) return undefined;
      k = this.loadHolderKey(id, passphrase);
      cache.set(id, k);
      return k;
    };
    let checked = Date.now();
    return {
      current: () => {
        // A rotation elsewhere (a process sharing this directory) is picked up within a minute.
        if (Date.now() - checked > 60_000) {
          checked = Date.now();
          this.reloadConfig();
        }
        const id = this.config.holderMasterKeys!.current;
        const key = get(id);
        if (!key) throw new InvalidInputError(`holder master key ${id} named in eticket.json is not in keys/`);
        return { id, key };
      },
      key: get,
    };
  }

  private reloadConfig(): void {
    try {
      const fresh = JSON.parse(readFileSync(join(this.dir, 'eticket.json'), 'utf8')) as WorkConfig;
      if (fresh.format === WORKDIR_FORMAT && fresh.operator === this.config.operator) this.config.holderMasterKeys = fresh.holderMasterKeys;
    } catch {
      // A half-visible eticket.json cannot happen (written by rename); an unreadable one leaves what we had.
    }
  }

  /** New AES-128 checking master key, version 1 (rotation would add versions, each with its key id). */
  private createMasterKey(passphrase: string): void {
    const version = 1;
    const key = new Uint8Array(randomBytes(SYM_KEY_LENGTH));
    storeMasterKey(this.keys, version, key, passphrase);
    this.config.checkingMasterKey = { version, keyId: hex(masterKeyId(key, this.config.operator)) };
    this.writeConfig();
  }

  private writeConfig(): void {
    // eticket.json is what marks the directory as initialised: replace it whole, never half-written.
    const file = join(this.dir, 'eticket.json');
    writeFileDurably(file, JSON.stringify(this.config, null, 2) + '\n');
  }

  /** Record the operator's time zone (already checked by the caller) in eticket.json. */
  setTimeZone(tz: string): void {
    this.config.timeZone = tz;
    this.writeConfig();
  }

  get hasMasterKey(): boolean {
    return this.config.checkingMasterKey !== undefined;
  }

  /**
   * Give a working directory made before gate mode sym its checking master key. The passphrase must
   * open the existing keys, so every key in the directory stays under one passphrase.
   */
  addMasterKey(passphrase: string): void {
    if (this.config.checkingMasterKey) throw new InvalidInputError(`working directory ${this.dir} already has checking master key ${this.config.checkingMasterKey.keyId} (version ${this.config.checkingMasterKey.version})`);
    this.loadAuthority(passphrase);
    this.createMasterKey(passphrase);
  }

  /** The operator's checking master key; MissingMasterKeyError for a directory made before sym mode. */
  loadMasterKey(passphrase: string): OperatorMasterKey {
    const ref = this.config.checkingMasterKey;
    if (!ref) throw new MissingMasterKeyError(this.dir);
    return loadMasterKey(this.keys, ref, this.config.operator, passphrase);
  }

  static open(dir: string): WorkDir {
    dir = resolve(dir);
    const file = join(dir, 'eticket.json');
    if (!existsSync(file)) throw new InvalidInputError(`${dir} is not an eticket working directory (no eticket.json): run \`eticket init --dir ${dir}\` or pass --dir`);
    let config: WorkConfig;
    try {
      config = JSON.parse(readFileSync(file, 'utf8')) as WorkConfig;
    } catch (e) {
      throw new InvalidInputError(`${file} is not valid JSON`, { cause: e });
    }
    if (config.format !== WORKDIR_FORMAT) throw new InvalidInputError(`${file} is not an ${WORKDIR_FORMAT} file`);
    return new WorkDir(dir, config);
  }

  private read(file: string): string {
    const p = join(this.dir, file);
    if (!existsSync(p)) throw new InvalidInputError(`working directory ${this.dir} lacks ${file}: run \`eticket init\` again`);
    return readFileSync(p, 'utf8');
  }

  get caCertificateDer(): Uint8Array {
    return unpem(this.read('ca.crt'), PEM_LABEL.certificate, 'ca.crt');
  }

  get authorityPublicKey(): Uint8Array {
    return unpem(this.read('authority.pub'), PEM_LABEL.publicKey, 'authority.pub');
  }

  get terminalPublicKey(): Uint8Array {
    return unpem(this.read('terminal.pub'), PEM_LABEL.terminalKey, 'terminal.pub');
  }

  get caSubject(): string {
    if (this.config.suite === 'sm9') return 'the key generation centre';
    const cert = nodeForge().pki.certificateFromPem(this.read('ca.crt'));
    return String(cert.subject.getField('CN')?.value ?? '');
  }

  /** SM9: the KGC's master public keys (sign, encryption) from kgc.pub. */
  private get kgcPublic(): KgcPublicKeys {
    return decodeKgcPublicKeys(unpem(this.read('kgc.pub'), PEM_LABEL.kgcPublicKeys, 'kgc.pub'));
  }

  /** The file gates trust card keys through: ca.crt (RSA) or kgc.pub (SM9). */
  get trustFile(): string {
    return this.config.suite === 'sm9' ? 'kgc.pub' : 'ca.crt';
  }

  cardTrust(): CardTrust {
    if (!existsSync(join(this.dir, this.trustFile))) this.read(this.trustFile); // the usual "run init again" answer
    return cardTrustFromFile(this.config.suite, join(this.dir, this.trustFile));
  }

  loadCa(passphrase: string): CertificateAuthority {
    return CertificateAuthority.load(this.keys.getRsa('ca', passphrase), this.caCertificateDer);
  }

  /** What personalisation needs to give a card its keys: the CA (RSA) or the KGC (SM9). */
  loadCardKeyIssuer(passphrase: string): { ca?: CertificateAuthority; kgc?: KeyGenerationCentre } {
    if (this.config.suite === 'sm9') return { kgc: KeyGenerationCentre.fromKeys(decodeKgcPrivate(this.keys.getBytes('kgc', passphrase, KGC_KIND))) };
    return { ca: this.loadCa(passphrase) };
  }

  /**
   * Open key 1 ahead of loadAuthoritySigner, its scrypt on the thread pool while this thread does other work (a store
   * booting). CryptoError on a wrong passphrase, as loadAuthoritySigner.
   */
  async warmAuthoritySigner(passphrase: string): Promise<void> {
    await this.keys.warm('authority', passphrase, this.authorityKind());
  }

  /** Key 1 as this working directory opened it (warmAuthoritySigner), for a thread of this process (KeyStore.handOver). */
  handOverAuthoritySigner(passphrase: string): OpenedSecret | undefined {
    return this.keys.handOver('authority', passphrase, this.authorityKind());
  }

  /** Key 1 opened by another thread of this process (handOverAuthoritySigner): true when it is this file's, kept. */
  adoptAuthoritySigner(passphrase: string, handed: OpenedSecret): boolean {
    return this.keys.adopt('authority', passphrase, this.authorityKind(), handed);
  }

  private authorityKind(): string {
    return this.config.suite === 'sm9' ? SM9_SIGNER : RSA_PRIVATE_KIND;
  }

  /** Key 1, the authority's root key as cards hold it. */
  loadAuthoritySigner(passphrase: string): Signer {
    return this.config.suite === 'sm9' ? sm9Provider.signer(this.keys.getBytes('authority', passphrase, SM9_SIGNER)) : this.keys.getRsa('authority', passphrase);
  }

  loadAuthority(passphrase: string): AuthenticationServer {
    return new AuthenticationServer(this.loadAuthoritySigner(passphrase), this.cardTrust());
  }

  /**
   * EXTERNAL AUTHENTICATE for an issuing terminal: the working directory's authority root key signs the card's
   * challenge. The passphrase is asked only when a locked card's identity is needed (a blank card answers openly).
   */
  issuerAuthorizer(passphrase: () => Promise<string> | string): (challenge: Uint8Array) => Promise<Uint8Array> {
    let authority: AuthenticationServer | undefined;
    return async (challenge) => {
      authority ??= this.loadAuthority(await passphrase());
      return authority.authorizeIssuer(challenge);
    };
  }

  loadTerminalKeys(passphrase: string): TerminalKeys {
    return loadTerminalKeys(this.keys, this.config.suite, passphrase);
  }

  /**
   * Write a gate's configuration directory (host/gate-config.ts reads it): gate.json, the trust file, the
   * authority's public key and, re-encrypted under the gate's own passphrase, only the keys its modes need
   * (keys 4/5 for pki, the checking master key for sym). Never the CA, KGC or authority private keys.
   */
  provisionGate(gateDir: string, options: { gateId: string; station: string; modes: GateMode[]; passphrase: string; gatePassphrase: string; force?: boolean }): GateFile {
    const dir = resolve(gateDir);
    if (existsSync(join(dir, GATE_FILE)) && !options.force) throw new InvalidInputError(`${dir} already holds a gate configuration (${GATE_FILE}): use another directory, or --force to replace it`);
    if (options.modes.length === 0) throw new InvalidInputError('a gate needs at least one mode (pki or sym)');
    const masterKey = options.modes.includes('sym') ? this.config.checkingMasterKey : undefined;
    if (options.modes.includes('sym') && !masterKey) throw new MissingMasterKeyError(this.dir);
    const gate: GateFile = {
      format: GATE_FORMAT,
      operator: this.config.operator,
      suite: this.config.suite,
      gateId: options.gateId,
      station: options.station,
      modes: options.modes,
      trust: this.trustFile,
      authorities: ['authority.pub'],
      ...(masterKey ? { checkingMasterKey: masterKey } : {}),
    };
    validateGateFile(gate, join(dir, GATE_FILE));
    // Open every key first: a wrong passphrase must leave no half-written gate behind.
    const master = masterKey ? this.loadMasterKey(options.passphrase) : undefined;
    if (options.modes.includes('pki')) this.loadTerminalKeys(options.passphrase);
    if (options.force) {
      // Replaced whole: first no longer a gate, then no key of the old configuration left behind (a sym key on a
      // gate re-provisioned pki-only would be a secret kept for nothing).
      rmSync(join(dir, GATE_FILE), { force: true });
      rmSync(join(dir, 'keys'), { recursive: true, force: true });
    }
    mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 });
    const store = new KeyStore(join(dir, 'keys'));
    if (options.modes.includes('pki')) copyTerminalKeys(this.keys, store, this.config.suite, options.passphrase, options.gatePassphrase);
    if (master && masterKey) storeMasterKey(store, masterKey.version, master.key, options.gatePassphrase);
    writeFileSync(join(dir, gate.trust), this.read(gate.trust));
    writeFileSync(join(dir, 'authority.pub'), this.read('authority.pub'));
    // gate.json last: a directory without it is not a gate, so an interrupted provisioning is never loaded.
    writeFileDurably(join(dir, GATE_FILE), JSON.stringify(gate, null, 2) + '\n');
    return gate;
  }
}
