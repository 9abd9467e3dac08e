// A production gate's configuration from files: gate.json (gate id, station, operator, suite, modes), the trust
// root (ca.crt or kgc.pub), the authority's public keys, and its own keys in keys/, encrypted under its passphrase.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidInputError } from '../sdk/errors.js';
import { specField } from '../sdk/fields.js';
import { KeyStore } from '../sdk/roles/keystore.js';
import { cardTrustFromFile, loadMasterKey, loadTerminalKeys, PEM_LABEL, readPemFile, type MasterKeyRef } from '../sdk/roles/key-files.js';
import type { SuiteName } from '../sdk/spec.js';
import { checkTerminalConfig, type CheckingTerminalConfig, type GateMode } from './checking.js';

/** Format tag of gate.json. */
export const GATE_FORMAT = 'eticket-gate/1';

/** The file that makes a directory a gate configuration; written last when a gate is provisioned. */
export const GATE_FILE = 'gate.json';

/**
 * gate.json: what a gate is and which of the files beside it to load. `eticket provision-gate` writes it
 * from an office working directory; docs/sdk.md describes every field.
 */
export interface GateFile {
  format: typeof GATE_FORMAT;
  /** Operator whose tickets the gate checks (and whose checking master key it may hold). */
  operator: string;
  suite: SuiteName;
  /** Written into every usage record the gate makes. */
  gateId: string;
  /** Station code: the gate refuses tickets whose origin (entry) or destination (exit) is another station. */
  station: string;
  /** Gate modes the directory has keys for; the first is the default. */
  modes: GateMode[];
  /** Trust root file: `ca.crt` (RSA suite) or `kgc.pub` (SM9 suite). */
  trust: string;
  /** Authority public key files (key 6), one per trusted authority key; several during a key rotation. */
  authorities: string[];
  /** Gate mode sym: the checking master key in keys/ and the key id it must have. */
  checkingMasterKey?: MasterKeyRef;
}

/** What the application adds to the files: the passphrase, and optionally overrides for one run. */
export interface LoadGateOptions {
  /** Passphrase of the gate's keys/ (never stored in the directory). */
  passphrase: string;
  /** Gate mode to run in; default: the first of gate.json's `modes`. */
  mode?: GateMode;
  /** Override gate.json's gate id. */
  gateId?: string;
  /** Override gate.json's station. */
  station?: string;
  /** Epoch seconds; default: the system clock. */
  clock?: () => number;
}

/** A gate ready to run: the CheckingTerminal configuration, with the fields gate.json guarantees filled in. */
export interface GateConfig extends CheckingTerminalConfig {
  mode: GateMode;
  gateId: string;
  station: string;
  operator: string;
  suite: SuiteName;
  /** The directory it was loaded from. */
  dir: string;
}

const SAFE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Gate id and station go into every usage record the gate writes: the protocol's lengths bound them. */
const GATE_TEXT = [specField('gateId', 'GATE_ID'), specField('station', 'STATION')] as const;

/** Check a gate.json document; `where` names it in the error. */
export function validateGateFile(g: GateFile, where: string): void {
  const fail = (why: string): never => {
    throw new InvalidInputError(`${where}: ${why}`);
  };
  if (g === null || typeof g !== 'object') fail('not a JSON object');
  if (g.format !== GATE_FORMAT) fail(`format is ${JSON.stringify(g.format)}, not ${GATE_FORMAT}`);
  if (typeof g.operator !== 'string' || g.operator.length === 0 || g.operator.length > 64) fail('"operator" must be a string of 1 to 64 characters');
  for (const f of GATE_TEXT) {
    const v = g[f.key];
    const n = typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : -1;
    if (n < f.min || n > f.max) fail(`"${f.key}" must be a string of ${f.min} to ${f.max} bytes of UTF-8 (apdu-spec ${f.name})${n >= 0 ? `, got ${n}` : ''}`);
  }
  if (g.suite !== 'rsa' && g.suite !== 'sm9') fail('"suite" is rsa or sm9');
  if (!Array.isArray(g.modes) || g.modes.length === 0 || !g.modes.every((m) => m === 'pki' || m === 'sym')) fail('"modes" is a non-empty list of pki and sym');
  // File names only: a gate.json must not point the loader at files outside its directory.
  if (typeof g.trust !== 'string' || !SAFE_FILE.test(g.trust)) fail('"trust" must be a file name in the directory');
  if (!Array.isArray(g.authorities) || g.authorities.length === 0 || !g.authorities.every((a) => typeof a === 'string' && SAFE_FILE.test(a))) {
    fail('"authorities" is a non-empty list of file names in the directory');
  }
  if (g.modes.includes('sym')) {
    const mk = g.checkingMasterKey;
    if (!mk || !Number.isInteger(mk.version) || mk.version < 1 || typeof mk.keyId !== 'string' || !/^[0-9A-Fa-f]{16}$/.test(mk.keyId)) {
      fail('mode sym needs "checkingMasterKey": { "version": <n ≥ 1>, "keyId": <16 hex digits> }');
    }
  }
}

/** Read and check `<dir>/gate.json`. */
export function readGateFile(dir: string): GateFile {
  const file = join(resolve(dir), GATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidInputError(code === 'ENOENT' ? `${resolve(dir)} is not a gate configuration (no ${GATE_FILE}): provision it with \`eticket provision-gate\`` : `cannot read ${file}: ${code ?? (e as Error).message}`, { cause: e });
  }
  let g: GateFile;
  try {
    g = JSON.parse(text) as GateFile;
  } catch (e) {
    throw new InvalidInputError(`${file} is not valid JSON`, { cause: e });
  }
  validateGateFile(g, file);
  return g;
}

/**
 * Load a gate's configuration from its directory: a CheckingTerminal config for the chosen mode. Pki loads
 * keys 4/5 and the card trust root; sym loads only the checking master key. Missing or damaged files, and a
 * configuration no tap could work with (checkTerminalConfig, overrides included), are InvalidInputError naming
 * the problem; a wrong passphrase is CryptoError.
 *
 * @example
 * const config = loadGateConfig('/etc/eticket/gate', { passphrase: process.env.ETICKET_GATE_PASSPHRASE! });
 * const gate = new CheckingTerminal(new CardSession(new PcscTransport({ reader })), config);
 */
export function loadGateConfig(dir: string, options: LoadGateOptions): GateConfig {
  const root = resolve(dir);
  const g = readGateFile(root);
  const mode = options.mode ?? g.modes[0];
  if (!g.modes.includes(mode)) throw new InvalidInputError(`gate ${g.gateId} in ${root} has no keys for mode ${mode} (it has: ${g.modes.join(', ')})`);
  const authorities = g.authorities.map((f) => readPemFile(join(root, f), PEM_LABEL.publicKey));
  const store = new KeyStore(join(root, 'keys'));
  const common = {
    gateId: options.gateId ?? g.gateId,
    station: options.station ?? g.station,
    operator: g.operator,
    suite: g.suite,
    authorities,
    clock: options.clock,
    dir: root,
  };
  const config: GateConfig =
    mode === 'sym'
      ? { ...common, mode, masterKeys: [loadMasterKey(store, g.checkingMasterKey!, g.operator, options.passphrase)] }
      : { ...common, mode, keys: loadTerminalKeys(store, g.suite, options.passphrase), cardTrust: cardTrustFromFile(g.suite, join(root, g.trust)) };
  // Here, not at the first tap: an override too long for the protocol, or keys of another suite than gate.json's.
  checkTerminalConfig(config);
  return config;
}
