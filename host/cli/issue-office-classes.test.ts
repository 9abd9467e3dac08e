// The issue command's back-office thread when the error classes cannot be loaded on the command's side (a broken
// install: a module of errorClasses() fails to import). An error from the thread must still reach its caller, as a
// plain Error with the thread's name and message, not leave the call waiting for ever. In its own file: the
// module made to fail here is mocked for the whole file. The thread runs from dist/ (built by the test setup).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cli, type CliEnv } from './run-cli.js';

// Imported by errorClasses() only (never by the thread's side of the test, which runs outside vitest's loader).
vi.mock('../../dist/sdk/holder.js', () => {
  throw new Error('broken install: dist/sdk/holder.js cannot be imported');
});

const dist = async () => ({
  office: (await import(new URL('../../dist/host/cli/issue-office.js', import.meta.url).href)) as typeof import('./issue-office.js'),
  store: (await import(new URL('../../dist/backoffice/store/store.js', import.meta.url).href)) as typeof import('../../backoffice/store/store.js'),
});

/** The promise's outcome, or 'pending' if it has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the back-office thread of `eticket issue`, its error classes failing to load', () => {
  const passphrase = 'correct horse battery staple';
  let dir: string;
  let env: CliEnv;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eticket-office-classes-'));
    env = { cwd: dir, passphrase };
    expect((await cli(env, 'init', '--operator', 'CR')).code).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a call the thread fails is rejected with the thread\'s error (name and message), not left waiting; the store still closes', async () => {
    const d = await dist();
    expect(d.office.canUseThread()).toBe(true);
    // The loader itself is what fails (the mocked module above).
    await expect(d.office.errorClasses()).rejects.toThrow(/error when mocking a module/);
    const office = await d.office.openIssueOffice(dir, passphrase, { json: true, waitSeconds: 5, command: 'issue-office-classes.test' }, Promise.resolve({ derive: true }));
    try {
      // Not an array: the thread's issueMany throws a TypeError, which crosses as the call's error.
      const outcome = await within(office.issueMany(undefined as never), 20_000);
      expect(outcome).not.toBe('pending');
      const error = (outcome as { error: unknown }).error;
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).name).toBe('TypeError');
      expect(error).not.toBeInstanceOf(d.store.StoreConflictError);
    } finally {
      expect(await within(office.close(), 20_000)).toEqual({ value: undefined });
    }
    // Closed: the store opens in this thread at once.
    const again = await d.store.Store.open(dir, { waitMs: 0 });
    await again.close();
  });
});
