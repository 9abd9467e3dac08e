// The CLI's working directory: eticket.json, the CA certificate, public keys in the clear, private keys
// encrypted in keys/ (sdk KeyStore), and the TID ledger. `eticket init` writes it; every command reads it.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import forge from 'node-forge';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { InvalidInputError } from '../../sdk/errors.js';
import { AuthenticationServer } from '../../sdk/roles/authority.js';
import { CertificateAuthority } from '../../sdk/roles/ca.js';
import { KeyStore } from '../../sdk/roles/keystore.js';
import { TerminalKeys } from '../../sdk/roles/terminal-keys.js';
import { TicketServer } from '../../sdk/roles/ticket-server.js';
import { CaTrust } from '../../sdk/roles/trust.js';
import type { SuiteName } from '../../sdk/spec.js';
import { CardLedger } from './ledger.js';

export const WORKDIR_FORMAT = 'eticket-workdir/1';

export interface WorkConfig {
  format: typeof WORKDIR_FORMAT;
  operator: string;
  suite: SuiteName;
  created: string;
  caName: string;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

function unpem(text: string, label: string, file: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!m) throw new InvalidInputError(`${file} holds no ${label}`);
  return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

export class WorkDir {
  readonly keys: KeyStore;

  private constructor(readonly dir: string, readonly config: WorkConfig) {
    this.keys = new KeyStore(join(dir, 'keys'));
  }

  /** Create the back office: CA, authority key (1/6), checking-terminal keys (4/5), all under `passphrase`. */
  static init(dir: string, options: { operator: string; suite: SuiteName; passphrase: string; caName?: string; force?: boolean }): WorkDir {
    dir = resolve(dir);
    if (existsSync(join(dir, 'eticket.json')) && !options.force) {
      throw new InvalidInputError(`${dir} is already an eticket working directory (eticket.json exists): use another --dir, or --force to replace its keys`);
    }
    if (options.suite !== 'rsa') throw new InvalidInputError(`suite ${options.suite} is not available in the CLI yet: use --suite rsa`);
    new TicketServer(options.operator); // validates the operator code before any key is made
    mkdirSync(dir, { recursive: true });
    const config: WorkConfig = { format: WORKDIR_FORMAT, operator: options.operator, suite: options.suite, created: new Date().toISOString(), caName: options.caName ?? `${options.operator} e-ticket CA` };
    const w = new WorkDir(dir, config);
    const ca = CertificateAuthority.create(config.caName);
    const authority = RsaPrivateKey.generate(2048);
    const terminalEnc = RsaPrivateKey.generate(2048);
    const terminalSig = RsaPrivateKey.generate(2048);
    w.keys.putRsa('ca', ca.key, options.passphrase);
    w.keys.putRsa('authority', authority, options.passphrase);
    w.keys.putRsa('terminal-encryption', terminalEnc, options.passphrase);
    w.keys.putRsa('terminal-signature', terminalSig, options.passphrase);
    writeFileSync(join(dir, 'ca.crt'), pem('CERTIFICATE', ca.certificateDer));
    writeFileSync(join(dir, 'authority.pub'), pem('PUBLIC KEY', authority.publicKey));
    writeFileSync(join(dir, 'terminal.pub'), pem('ETICKET TERMINAL KEY', new TerminalKeys(terminalEnc, terminalSig).publicKey));
    writeFileSync(join(dir, 'eticket.json'), JSON.stringify(config, null, 2) + '\n');
    return w;
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
    return unpem(this.read('ca.crt'), 'CERTIFICATE', 'ca.crt');
  }

  get authorityPublicKey(): Uint8Array {
    return unpem(this.read('authority.pub'), 'PUBLIC KEY', 'authority.pub');
  }

  get terminalPublicKey(): Uint8Array {
    return unpem(this.read('terminal.pub'), 'ETICKET TERMINAL KEY', 'terminal.pub');
  }

  get caSubject(): string {
    const cert = forge.pki.certificateFromPem(this.read('ca.crt'));
    return String(cert.subject.getField('CN')?.value ?? '');
  }

  cardTrust(): CaTrust {
    return new CaTrust(this.caCertificateDer);
  }

  loadCa(passphrase: string): CertificateAuthority {
    return CertificateAuthority.load(this.keys.getRsa('ca', passphrase), this.caCertificateDer);
  }

  loadAuthority(passphrase: string): AuthenticationServer {
    return new AuthenticationServer(this.keys.getRsa('authority', passphrase), this.cardTrust());
  }

  loadTerminalKeys(passphrase: string): TerminalKeys {
    return new TerminalKeys(this.keys.getRsa('terminal-encryption', passphrase), this.keys.getRsa('terminal-signature', passphrase));
  }

  ledger(): CardLedger {
    return new CardLedger(join(this.dir, 'ledger.json'));
  }
}
