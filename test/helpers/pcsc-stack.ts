// Whether tests can use the real PC/SC stack (pcsclite built, pcscd running with vpcd), and the lock (in
// testing/vpcd-lock.ts, which the PC/SC benchmark takes too) so files that put cards into vpcd take turns.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { VPCD_READERS } from '../../testing/vpcd-lock.js';

export { lockVpcd, pullCard } from '../../testing/vpcd-lock.js';

export const VPCD_PORTS = [35963, 35964] as const;
export const VPCD_READER_0 = VPCD_READERS[VPCD_PORTS[0]]!;
export const VPCD_READER_1 = VPCD_READERS[VPCD_PORTS[1]]!;

/** Ports in LISTEN state, read from /proc/net/tcp*: connecting to vpcd would insert a card. */
export function listeningPorts(): Set<number> {
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && cols[1]) ports.add(Number.parseInt(cols[1].split(':')[1] ?? '', 16));
    }
  }
  return ports;
}

export interface StackState {
  ok: boolean;
  reason: string;
}

/** Checked once per test file; ETICKET_PCSC=1 (set by .ci/run) turns "unavailable" into a failure, not a skip. */
export function pcscStack(): StackState {
  if (process.env.ETICKET_PCSC === '0') return { ok: false, reason: 'ETICKET_PCSC=0: PC/SC tests disabled' };
  const required = process.env.ETICKET_PCSC === '1';
  let reason = '';
  try {
    createRequire(import.meta.url)('pcsclite');
  } catch (error) {
    reason = `npm pcsclite not built (${(error as Error).message.split('\n')[0]}): apt-get install libpcsclite-dev pcscd vsmartcard-vpcd; npm rebuild pcsclite`;
  }
  if (!reason) {
    const listening = listeningPorts();
    const missing = VPCD_PORTS.filter((p) => !listening.has(p));
    if (missing.length) reason = `pcscd with vpcd not running (ports ${missing.join(', ')} not listening): run tools/pcscd-start.sh`;
  }
  if (!reason) return { ok: true, reason: '' };
  if (required) throw new Error(`ETICKET_PCSC=1 but the PC/SC stack is unavailable: ${reason}`);
  return { ok: false, reason };
}

/** Poll until `probe` returns a value (not undefined/false), or throw after `timeoutMs`. Never a bare sleep. */
export async function waitUntil<T>(probe: () => T | Promise<T>, timeoutMs: number, what: string, intervalMs = 25): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}


/**
 * How long a test file may wait for the readers (lockVpcd's own default): vitest runs files in parallel and the
 * PC/SC files hold the lock one after another for minutes in all on a loaded machine.
 */
export const VPCD_LOCK_WAIT_MS = 840_000;
/** Timeout for a beforeAll that takes the lock: the wait, plus a minute for its own work. */
export const VPCD_LOCK_HOOK_MS = VPCD_LOCK_WAIT_MS + 60_000;
