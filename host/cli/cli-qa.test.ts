// What integrators and QA engineers ran into (issue 13), through the real `eticket` process: service dates in the
// operator's time zone, the gate choosing the ticket that can pass, batches that say what happened.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, type CliEnv } from './run-cli.js';

let dir: string;
let env: CliEnv;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'eticket-cli-qa-'));
  env = { cwd: dir };
  const init = await cli(env, 'init', '--operator', 'CR', '--time-zone', 'Asia/Shanghai');
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
  const made = await Promise.all([cli(env, 'card', 'create', 'tz.img'), cli(env, 'card', 'create', 'two.img')]);
  expect(made.map((r) => r.code)).toEqual([0, 0]);
  const pers = await Promise.all([cli(env, 'card', 'personalize', '--card', 'tz.img'), cli(env, 'card', 'personalize', '--card', 'two.img')]);
  expect(pers.map((r) => r.stderr)).toEqual(['', '']);
}, 300_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('service dates in the operator time zone', () => {
  it('a UTC+8 operator: a ticket for 2026-12-01 is valid from local midnight and passes the gate at 07:30 local (23:30 UTC the day before)', async () => {
    const issued = await cli(env, '--json', 'issue', '--card', 'tz.img', '--service-date', '2026-12-01', '--train', 'G1', '--origin', 'BJS', '--destination', 'SHH');
    expect(issued.code).toBe(0);
    const tid = issued.json()[0].tid as string;
    const shown = await cli(env, '--json', 'verify', '--card', 'tz.img', '--tid', tid);
    expect(shown.json()[0]).toMatchObject({ ticket: { face: { serviceDate: '2026-12-01', validFrom: '2026-11-30T16:00:00Z', validUntil: '2026-12-01T20:00:00Z' } } });
    const gate = await cli(env, '--json', 'gate', '--card', 'tz.img', '--station', 'BJS', '--direction', 'entry', '--time', '2026-11-30T23:30:00Z');
    expect(gate.code).toBe(0);
    expect(gate.json()[0]).toMatchObject({ pass: true, tid });
  });

  it('--tz overrides the working directory: the same tap in UTC looks for 2026-11-30 and finds nothing (exit 6)', async () => {
    const gate = await cli(env, '--json', '--tz', 'UTC', 'gate', '--card', 'tz.img', '--station', 'BJS', '--direction', 'entry', '--time', '2026-11-30T23:31:00Z');
    expect(gate.code).toBe(6);
    expect(gate.json()[0]).toMatchObject({ pass: false, reason: 'not_found' });
  });

  it('an unknown time zone is a usage error (exit 1) naming it', async () => {
    const r = await cli(env, '--tz', 'Mars/Olympus', 'gate', '--card', 'tz.img', '--station', 'BJS', '--direction', 'entry');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown time zone "Mars\/Olympus"/);
  });
});

describe('the gate chooses the ticket that can pass', () => {
  it('two tickets for one train: after the first is used up, the second passes entry', async () => {
    const one = await cli(env, '--json', 'issue', '--card', 'two.img', '--service-date', '2026-12-02', '--train', 'G7', '--origin', 'BJS', '--destination', 'SHH', '--seat', '01A');
    const two = await cli(env, '--json', 'issue', '--card', 'two.img', '--service-date', '2026-12-02', '--train', 'G7', '--origin', 'BJS', '--destination', 'SHH', '--seat', '01B');
    expect([one.code, two.code]).toEqual([0, 0]);
    const [first, second] = [one.json()[0].tid, two.json()[0].tid];
    const tap = (direction: string, station: string, time: string) => cli(env, '--json', 'gate', '--card', 'two.img', '--station', station, '--direction', direction, '--train', 'G7', '--time', time);
    expect((await tap('entry', 'BJS', '2026-12-02T01:00:00Z')).json()[0]).toMatchObject({ pass: true, tid: first });
    expect((await tap('exit', 'SHH', '2026-12-02T05:00:00Z')).json()[0]).toMatchObject({ pass: true, tid: first });
    // The card still shows the used ticket first; the gate looks further and lets the second passenger in.
    const again = await tap('entry', 'BJS', '2026-12-02T05:10:00Z');
    expect(again.code).toBe(0);
    expect(again.json()[0]).toMatchObject({ pass: true, tid: second });
    // Both used: the first ticket's reason stands.
    await tap('exit', 'SHH', '2026-12-02T09:00:00Z');
    const none = await tap('entry', 'BJS', '2026-12-02T09:10:00Z');
    expect(none.code).toBe(6);
    expect(none.json()[0]).toMatchObject({ pass: false, reason: 'already_exited', tid: first });
  });
});
