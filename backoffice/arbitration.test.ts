// When an authority key was in force (backoffice/arbitration.ts keyValidAt): signatures and retirements are stamped in
// whole seconds, so the retirement's own second belongs to the key (a rotation right after a sale in the same second
// made `eticket verify` call that bill's key "not in force" in host/cli/cli-backoffice.test.ts).

import { describe, expect, it } from 'vitest';
import type { AuthorityKeyRecord } from './store/store.js';
import { keyValidAt } from './arbitration.js';

const T = Date.parse('2026-12-02T17:20:13Z') / 1000;
const key = (over: Partial<AuthorityKeyRecord>): AuthorityKeyRecord =>
  ({ keyId: '6927884257345943', role: 'signing', suite: 'rsa', validFrom: new Date((T - 1) * 1000), validUntil: new Date((T + 3 * 86400) * 1000), ...over }) as AuthorityKeyRecord;

describe('keyValidAt', () => {
  it('a key retired at second T signed validly at T (the same second), not at T + 1', () => {
    const k = key({ retiredAt: new Date(T * 1000) });
    expect(keyValidAt(k, T - 1)).toBe(true);
    expect(keyValidAt(k, T)).toBe(true);
    expect(keyValidAt(k, T + 1)).toBe(false);
  });

  it('inside its window: from a minute before validFrom (clock skew) to validUntil inclusive', () => {
    const k = key({});
    expect(keyValidAt(k, T - 1 - 60)).toBe(true);
    expect(keyValidAt(k, T - 1 - 61)).toBe(false);
    expect(keyValidAt(k, T + 3 * 86400)).toBe(true);
    expect(keyValidAt(k, T + 3 * 86400 + 1)).toBe(false);
  });
});
