// Secrets on disk through the real CLI: card images and --record dumps are 0600, an image other users could
// read is tightened when opened, and a recorded personalisation holds no key: PUT KEY data is redacted.

import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EticketCard } from '../../card/applet.js';
import { diversify } from '../../sdk/crypto/symmetric.js';
import { cardIdentity } from '../../sdk/roles/kgc.js';
import { ReplayTransport } from '../transport/replay.js';
import { cli, type CliEnv } from './run-cli.js';
import { WorkDir } from './workdir.js';

const PASS = 'correct horse battery staple';
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
const mode = (p: string): number => statSync(p).mode & 0o777;

/** A working directory with one blank card, personalised while recording; returns the dump and the card. */
async function recordedPersonalisation(suite: 'rsa' | 'sm9', operator: string) {
  const dir = mkdtempSync(join(tmpdir(), `eticket-secrets-${suite}-`));
  dirs.push(dir);
  const env: CliEnv = { cwd: dir, timeoutMs: 120_000 };
  expect((await cli(env, 'init', '--operator', operator, '--suite', suite)).code).toBe(0);
  expect((await cli(env, 'card', 'create', 'c.img', '--suite', suite)).code).toBe(0);
  const pers = await cli(env, '--record', 'pers.apdu', 'card', 'personalize', '--card', 'c.img');
  expect(pers.stderr).toBe('');
  expect(pers.code).toBe(0);
  const dump = readFileSync(join(dir, 'pers.apdu'), 'utf8');
  const card = EticketCard.open(join(dir, 'c.img'));
  return { dir, env, dump, serial: card.persistent.serial, work: WorkDir.open(dir) };
}

describe('secrets on disk (CLI)', () => {
  it('rsa: the recorded personalisation has every PUT KEY redacted, no K_card or terminal key in it; dump and image are 0600', async () => {
    const { dir, env, dump, serial, work } = await recordedPersonalisation('rsa', 'CR');
    const master = work.loadMasterKey(PASS);
    const kCard = diversify(master.key, serial, master.operator);
    const text = dump.replace(/\s+/g, '').toUpperCase();
    expect(text).not.toContain(hex(kCard));
    expect(text).not.toContain(hex(work.terminalPublicKey));
    expect(text).not.toContain(hex(work.authorityPublicKey));
    // One marker per PUT KEY (authority, terminal, diversified key), each followed by a zeroed data field.
    const markers = [...dump.matchAll(/^# REDACTED (\d+) bytes at offset (\d+): PUT KEY data \(key material\) replaced by 00\n([0-9A-F]+)$/gm)];
    expect(markers.map((m) => m[3]!.slice(0, 8))).toEqual(['80D80100', '80D80200', '80D80500']);
    for (const [, length, offset, apdu] of markers) {
      const bytes = Buffer.from(apdu!, 'hex');
      expect(bytes.subarray(Number(offset), Number(offset) + Number(length)).every((b) => b === 0)).toBe(true);
      expect(bytes.length).toBeGreaterThan(Number(offset) + Number(length) - 1);
    }
    // The redacted dump still parses, and `eticket trace` decodes it.
    expect(new ReplayTransport(dump).dump.exchanges.filter((e) => e.redacted)).toHaveLength(3);
    const trace = await cli(env, 'trace', 'pers.apdu');
    expect(trace.code).toBe(0);
    expect(trace.stdout).toMatch(/PUT KEY/);

    expect(mode(join(dir, 'pers.apdu'))).toBe(0o600);
    expect(mode(join(dir, 'c.img'))).toBe(0o600);
    expect(mode(join(dir, 'keys'))).toBe(0o700);

    // An image made readable by others is tightened the next time anything opens it.
    chmodSync(join(dir, 'c.img'), 0o644);
    const tickets = await cli(env, 'tickets', '--card', 'c.img');
    expect(tickets.code).toBe(0);
    expect(mode(join(dir, 'c.img'))).toBe(0o600);
    // A dump file that already existed with 0644 is made 0600 before the new session is written to it.
    chmodSync(join(dir, 'pers.apdu'), 0o644);
    expect((await cli(env, '--record', 'pers.apdu', 'tickets', '--card', 'c.img')).code).toBe(0);
    expect(mode(join(dir, 'pers.apdu'))).toBe(0o600);
  }, 180_000);

  it('sm9: the card private keys from the key generation centre are not in the recorded dump, but are in the 0600 image', async () => {
    const { dir, dump, serial, work } = await recordedPersonalisation('sm9', 'MT');
    const { kgc } = work.loadCardKeyIssuer(PASS);
    const identity = cardIdentity(serial);
    const enc = kgc!.extractEncryptionKey(identity);
    const sig = kgc!.extractSigningKey(identity);
    const text = dump.replace(/\s+/g, '').toUpperCase();
    expect(text).not.toContain(hex(enc));
    expect(text).not.toContain(hex(sig));
    expect([...dump.matchAll(/^# REDACTED \d+ bytes at offset \d+: PUT KEY data/gm)]).toHaveLength(5); // 03, 04, 01, 02, 05
    // The check above is meaningful: the image (owner-only) does hold those keys in clear.
    const image = readFileSync(join(dir, 'c.img')).toString('hex').toUpperCase();
    expect(image).toContain(hex(enc));
    expect(mode(join(dir, 'c.img'))).toBe(0o600);
  }, 180_000);
});
