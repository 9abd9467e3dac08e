// A production gate's configuration from files (host/gate-config.ts), provisioned from an office working
// directory (WorkDir.provisionGate): the loaded gate passes a card personalised by that office, in modes pki and
// sym, for both suites; hostile or damaged directories and wrong passphrases get typed errors and load nothing.

import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { MemoryBackend } from '../card/nvm.js';
import { toServiceDate } from '../sdk/fields.js';
import { CryptoError, InvalidInputError } from '../sdk/errors.js';
import { KeyStore } from '../sdk/roles/keystore.js';
import { storeMasterKey } from '../sdk/roles/key-files.js';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import type { SuiteName } from '../sdk/spec.js';
import { CheckingTerminal } from './checking.js';
import { MissingMasterKeyError, WorkDir } from './cli/workdir.js';
import { GATE_FILE, loadGateConfig, readGateFile } from './gate-config.js';
import { IssuingTerminal } from './issuing.js';
import { personalizeCard } from './personalize.js';
import { CardSession } from './session.js';
import { EmulatorTransport } from './transport/emulator.js';

const OFFICE_PASS = 'office passphrase';
const GATE_PASS = 'gate passphrase';
const root = mkdtempSync(join(tmpdir(), 'eticket-gate-config-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A card personalised by the office `w`, holding one ticket valid from station BJS today. */
async function cardWithTicket(w: WorkDir): Promise<CardSession> {
  const session = new CardSession(new EmulatorTransport(EticketCard.create(new MemoryBackend(), { suite: w.config.suite })));
  const scopes = [w.config.operator];
  const creds = await personalizeCard(session, {
    ...w.loadCardKeyIssuer(OFFICE_PASS),
    authorities: [{ publicKey: w.authorityPublicKey, scopes }],
    terminals: [{ publicKey: w.terminalPublicKey, scopes }],
    masterKeys: [w.loadMasterKey(OFFICE_PASS)],
  });
  const face = new TicketServer(w.config.operator).createTicket({ serviceDate: toServiceDate(new Date()), origin: 'BJS', train: 'G1' });
  const issuing = new IssuingTerminal(session);
  await issuing.load(w.loadAuthority(OFFICE_PASS).issue(face, creds).sealed);
  return session;
}

describe.each(['rsa', 'sm9'] as SuiteName[])('a gate provisioned from a %s office', (suite) => {
  let office: WorkDir;
  let gateDir: string;

  beforeAll(() => {
    office = WorkDir.init(join(root, `office-${suite}`), { operator: 'CR', suite, passphrase: OFFICE_PASS });
    gateDir = join(root, `gate-${suite}`);
    office.provisionGate(gateDir, { gateId: 'BJS-G07', station: 'BJS', modes: ['pki', 'sym'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS });
  });

  it('holds the public files, gate.json and only the gate keys: no CA, KGC or authority private key', () => {
    const trust = suite === 'sm9' ? 'kgc.pub' : 'ca.crt';
    expect(readdirSync(gateDir).sort()).toEqual(['authority.pub', trust, GATE_FILE, 'keys'].sort());
    const keys = readdirSync(join(gateDir, 'keys')).sort();
    // One container for every suite (RSA keys as PKCS#8 inside), owner-only: the gate keys are private keys.
    expect(keys).toEqual(['checking-master-v1.secret.json', 'terminal-encryption.secret.json', 'terminal-signature.secret.json']);
    expect(statSync(join(gateDir, 'keys')).mode & 0o777).toBe(0o700);
    for (const k of keys) expect(statSync(join(gateDir, 'keys', k)).mode & 0o777, k).toBe(0o600);
    expect(readGateFile(gateDir)).toMatchObject({ operator: 'CR', suite, gateId: 'BJS-G07', station: 'BJS', modes: ['pki', 'sym'], trust, authorities: ['authority.pub'] });
  });

  it.each(['pki', 'sym'] as const)('mode %s: the loaded gate passes a card of that office, then rejects it re-entering', async (mode) => {
    const config = loadGateConfig(gateDir, { passphrase: GATE_PASS, mode });
    expect(config).toMatchObject({ mode, gateId: 'BJS-G07', station: 'BJS', operator: 'CR', suite });
    // Sym loads no pki keys at all; pki no master key.
    expect(config.keys === undefined).toBe(mode === 'sym');
    expect(config.masterKeys === undefined).toBe(mode === 'pki');
    const session = await cardWithTicket(office);
    const first = await new CheckingTerminal(session, config).passGate('entry');
    expect(first.decision).toMatchObject({ pass: true });
    expect(first.receipt?.counter).toBe(1);
    const again = await new CheckingTerminal(session, config).passGate('entry');
    expect(again.decision).toMatchObject({ pass: false, reason: 'already_inside' });
  });

  it('the office passphrase does not open the gate keys (they were re-encrypted): CryptoError', () => {
    expect(() => loadGateConfig(gateDir, { passphrase: OFFICE_PASS, mode: 'pki' })).toThrow(CryptoError);
    expect(() => loadGateConfig(gateDir, { passphrase: OFFICE_PASS, mode: 'sym' })).toThrow(CryptoError);
  });

  it('overrides for one run take the place of gate.json values', () => {
    const config = loadGateConfig(gateDir, { passphrase: GATE_PASS, mode: 'sym', gateId: 'BJS-G08', station: 'SHH' });
    expect(config).toMatchObject({ gateId: 'BJS-G08', station: 'SHH' });
  });
});

describe('gate directories that must not load', () => {
  let office: WorkDir;
  beforeAll(() => {
    office = WorkDir.init(join(root, 'office-bad'), { operator: 'CR', suite: 'rsa', passphrase: OFFICE_PASS });
  });

  /** A fresh pki+sym gate directory to damage. */
  function gate(name: string): string {
    const dir = join(root, name);
    office.provisionGate(dir, { gateId: 'G1', station: 'BJS', modes: ['pki', 'sym'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS });
    return dir;
  }

  function rewrite(dir: string, change: (g: Record<string, unknown>) => void): void {
    const g = JSON.parse(readFileSync(join(dir, GATE_FILE), 'utf8'));
    change(g);
    writeFileSync(join(dir, GATE_FILE), JSON.stringify(g));
  }

  it('a directory without gate.json says how to make one', () => {
    expect(() => loadGateConfig(root, { passphrase: GATE_PASS })).toThrow(/is not a gate configuration \(no gate.json\): provision it with `eticket provision-gate`/);
  });

  it('gate.json that is not JSON, or of another format, is an InvalidInputError naming the file', () => {
    const dir = gate('gate-garbage');
    writeFileSync(join(dir, GATE_FILE), '{ not json');
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS })).toThrow(InvalidInputError);
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS })).toThrow(/gate.json is not valid JSON/);
    writeFileSync(join(dir, GATE_FILE), JSON.stringify({ format: 'eticket-gate/9' }));
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS })).toThrow(/format is "eticket-gate\/9", not eticket-gate\/1/);
  });

  it('file names that leave the directory are refused before anything is read', () => {
    const dir = gate('gate-escape');
    rewrite(dir, (g) => (g.trust = '../office-bad/ca.crt'));
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS })).toThrow(/"trust" must be a file name in the directory/);
    rewrite(dir, (g) => {
      g.trust = 'ca.crt';
      g.authorities = ['/etc/passwd'];
    });
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS })).toThrow(/"authorities" is a non-empty list of file names/);
  });

  it('a gate id or station longer than the protocol carries (GATE_ID, STATION: 1..16 bytes) is refused at provisioning and at loading', () => {
    const dir = join(root, 'gate-long-id');
    expect(() => office.provisionGate(dir, { gateId: 'BJS-G07-PLATFORM-3', station: 'BJS', modes: ['pki'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS })).toThrow(InvalidInputError);
    expect(() => office.provisionGate(dir, { gateId: 'BJS-G07-PLATFORM-3', station: 'BJS', modes: ['pki'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS })).toThrow(
      /"gateId" must be a string of 1 to 16 bytes of UTF-8 \(apdu-spec GATE_ID\), got 18/,
    );
    expect(existsSync(join(dir, GATE_FILE))).toBe(false);
    const ok = gate('gate-long-edit');
    // Sixteen characters but 48 bytes: the limit is the card's, in bytes.
    rewrite(ok, (g) => (g.station = '北京西站北京西站北京西站北京西站'));
    expect(() => loadGateConfig(ok, { passphrase: GATE_PASS })).toThrow(/"station" must be a string of 1 to 16 bytes of UTF-8 \(apdu-spec STATION\), got 48/);
    rewrite(ok, (g) => (g.station = 'BJS'));
    expect(loadGateConfig(ok, { passphrase: GATE_PASS }).station).toBe('BJS');
    expect(() => loadGateConfig(ok, { passphrase: GATE_PASS, gateId: 'X'.repeat(17) })).toThrow(/gateId must be 1\.\.16 bytes of UTF-8 \(apdu-spec GATE_ID\), got 17/);
  });

  it('a mode the gate has no keys for is refused; so is sym without a master key reference', () => {
    const dir = join(root, 'gate-pki-only');
    office.provisionGate(dir, { gateId: 'G2', station: 'BJS', modes: ['pki'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS });
    expect(existsSync(join(dir, 'keys', 'checking-master-v1.secret.json'))).toBe(false);
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS, mode: 'sym' })).toThrow(/has no keys for mode sym \(it has: pki\)/);
    rewrite(dir, (g) => (g.modes = ['sym']));
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS })).toThrow(/mode sym needs "checkingMasterKey"/);
  });

  it("another master key put in the master key's place is refused by its key id", () => {
    const dir = gate('gate-swapped-mk');
    storeMasterKey(new KeyStore(join(dir, 'keys')), 1, new Uint8Array(16).fill(7), GATE_PASS);
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS, mode: 'sym' })).toThrow(/is not the checking master key [0-9A-F]{16} of operator CR/);
  });

  it('a trust root of the wrong kind (an authority key where the CA certificate belongs) is refused', () => {
    const dir = gate('gate-wrong-trust');
    copyFileSync(join(dir, 'authority.pub'), join(dir, 'ca.crt'));
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS, mode: 'pki' })).toThrow(/ca.crt holds no CERTIFICATE/);
  });

  it('a missing key file is named', () => {
    const dir = gate('gate-no-key');
    rmSync(join(dir, 'keys', 'terminal-signature.secret.json'));
    expect(() => loadGateConfig(dir, { passphrase: GATE_PASS, mode: 'pki' })).toThrow(/has no key "terminal-signature"/);
  });

  it('provisioning with a wrong office passphrase writes no gate; sym from an office without a master key is refused', () => {
    const dir = join(root, 'gate-wrong-office-pass');
    expect(() => office.provisionGate(dir, { gateId: 'G3', station: 'BJS', modes: ['pki'], passphrase: 'wrong', gatePassphrase: GATE_PASS })).toThrow(CryptoError);
    expect(existsSync(join(dir, GATE_FILE))).toBe(false);
    const old = WorkDir.init(join(root, 'office-old'), { operator: 'CR', suite: 'rsa', passphrase: OFFICE_PASS });
    const eticketJson = join(old.dir, 'eticket.json');
    const config = JSON.parse(readFileSync(eticketJson, 'utf8'));
    delete config.checkingMasterKey;
    writeFileSync(eticketJson, JSON.stringify(config));
    expect(() => WorkDir.open(old.dir).provisionGate(join(root, 'gate-old'), { gateId: 'G4', station: 'BJS', modes: ['sym'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS })).toThrow(MissingMasterKeyError);
  });

  it('an existing gate is not overwritten without force', () => {
    const dir = gate('gate-twice');
    expect(() => office.provisionGate(dir, { gateId: 'G5', station: 'BJS', modes: ['pki'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS })).toThrow(/already holds a gate configuration/);
    office.provisionGate(dir, { gateId: 'G5', station: 'BJS', modes: ['pki'], passphrase: OFFICE_PASS, gatePassphrase: GATE_PASS, force: true });
    expect(readGateFile(dir).gateId).toBe('G5');
    // Re-provisioned pki-only: the old sym master key is gone with the old configuration.
    expect(readdirSync(join(dir, 'keys')).sort()).toEqual(['terminal-encryption.secret.json', 'terminal-signature.secret.json']);
  });
});
