// The back-office commands as an integrator runs them (spawned `eticket`): an old working directory's ledger
// imported; a seller registered; a service sold out without overselling; sales per seller in CSV and JSON;
// two key rotations, after which a bill of each key, a pki receipt and a sym receipt verify (`eticket verify
// FILE|-`) and tampered ones fail with the reason (exit 5); a cancel that frees the seat and bills the refund.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteTemplate } from '../../test/helpers/stores.js';
import { cli, type CliEnv } from './run-cli.js';

let dir: string;
let env: CliEnv;

beforeAll(async () => {
  await pgliteTemplate();
  process.env.ETICKET_CLIENT_PASSPHRASE = 'the seller keeps this';
  dir = mkdtempSync(join(tmpdir(), 'eticket-bo-cli-'));
  env = { cwd: dir, timeoutMs: 90_000 };
  expect((await cli(env, 'init')).code).toBe(0);
  for (const img of ['card.img', 'other.img']) {
    expect((await cli(env, 'card', 'create', img)).code).toBe(0);
    expect((await cli(env, 'card', 'personalize', '--card', img)).code).toBe(0);
  }
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const one = (r: { json: () => Record<string, unknown>[] }) => r.json()[0] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('back-office commands', () => {
  it('every new command has --help with an example', async () => {
    const commands = [['keys'], ['keys', 'list'], ['keys', 'rotate'], ['seller'], ['seller', 'add'], ['seller', 'list'], ['terminal', 'add'], ['service', 'add'], ['service', 'list'], ['book'], ['cancel'], ['report', 'sales'], ['serve']];
    const results = await Promise.all(commands.map((c) => cli(env, ...c, '--help')));
    results.forEach((r, i) => {
      expect(r.code, commands[i].join(' ')).toBe(0);
      expect(r.stdout, commands[i].join(' ')).toMatch(/Example/);
    });
  }, 300_000);

  it('an old working directory: init --migrate imports ledger.json, whose TIDs stay taken and whose counter goes on', async () => {
    const old = mkdtempSync(join(tmpdir(), 'eticket-legacy-'));
    const oldEnv = { cwd: old, timeoutMs: 90_000 };
    try {
      expect((await cli(oldEnv, 'init')).code).toBe(0);
      rmSync(join(old, 'store'), { recursive: true, force: true });
      expect((await cli(oldEnv, 'card', 'create', 'c.img')).code).toBe(0);
      expect((await cli(oldEnv, 'card', 'personalize', '--card', 'c.img')).code).toBe(0);
      writeFileSync(join(old, 'ledger.json'), JSON.stringify({ counter: 41, tids: ['CR-OLD-1', 'CR-20300101-000041'], cards: { 'CR-OLD-1': 'AAAAAAAAAAAAAAAA' } }));
      const m = await cli(oldEnv, '--json', 'init', '--migrate');
      expect(m.code, m.stderr).toBe(0);
      expect(one(m).store).toMatchObject({ engine: 'pglite', tids: 2, keys: 1 });
      expect(existsSync(join(old, 'ledger.json.imported'))).toBe(true);
      const taken = await cli(oldEnv, '--json', 'issue', '--card', 'c.img', '--tid', 'CR-OLD-1', '--service-date', '2030-01-01');
      expect(taken.code).toBe(1);
      expect(taken.stdout + taken.stderr).toMatch(/CR-OLD-1 was already issued to card AAAAAAAAAAAAAAAA/);
      const next = await cli(oldEnv, '--json', 'issue', '--card', 'c.img', '--service-date', '2030-01-01');
      expect(next.code, next.stderr).toBe(0);
      expect(one(next).tid).toBe('CR-20300101-000042');
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  }, 300_000);

  it('a seller with its own certified key; a service sold out without overselling; sales per seller in CSV and JSON', async () => {
    const add = await cli(env, '--json', 'seller', 'add', 'acme', '--name', 'Acme Travel', '--out', 'acme.json');
    expect(add.code, add.stderr).toBe(0);
    expect(statSync(join(dir, 'acme.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dir, 'acme.json'), 'utf8'))).toMatchObject({ format: 'eticket-client/1', clientId: 'acme', role: 'seller', certificate: expect.stringMatching(/^30/), key: { cipher: 'aes-256-gcm' } });
    const again = await cli(env, 'seller', 'add', 'acme', '--out', 'acme2.json');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already registered/);
    expect(existsSync(join(dir, 'acme2.json'))).toBe(false);

    const svc = await cli(env, '--json', 'service', 'add', '--train', 'G1', '--date', '2030-01-15', '--origin', 'BJS', '--destination', 'SHH', '--class', '2:2:55300');
    expect(svc.code, svc.stderr).toBe(0);
    const id = String(one(svc).service.serviceId);
    const b1 = await cli(env, '--json', 'book', '--service', id, '--class', '2', '--card', 'card.img', '--seller', 'acme');
    const b2 = await cli(env, '--json', 'book', '--service', id, '--class', '2', '--card', 'card.img');
    expect([b1.code, b2.code], b1.stderr + b2.stderr).toEqual([0, 0]);
    expect(one(b1)).toMatchObject({ coach: '01', seat: '001', price: 55300, bill: { seller: 'acme', kind: 'sale' } });
    expect(one(b2)).toMatchObject({ coach: '01', seat: '002', bill: { seller: '(operator)' } });
    const soldOut = await cli(env, 'book', '--service', id, '--class', '2', '--card', 'card.img');
    expect(soldOut.code).toBe(1);
    expect(soldOut.stderr).toMatch(/sold out/);

    const csv = await cli(env, 'report', 'sales', '--format', 'csv');
    const day = new Date().toISOString().slice(0, 10);
    expect(csv.stdout.trim().split('\n')).toEqual(['seller,day,currency,sold,refunded,gross,refunds,net', `(operator),${day},CNY,1,0,55300,0,55300`, `acme,${day},CNY,1,0,55300,0,55300`]);
    const json = await cli(env, '--json', 'report', 'sales', '--seller', 'acme');
    expect(one(json).rows).toEqual([{ seller: 'acme', day, currency: 'CNY', sold: 1, refunded: 0, gross: 55300, refunds: 0, net: 55300 }]);

    // Cancelling a loaded ticket deletes it from the card, frees the seat and bills the refund.
    const cancel = await cli(env, '--json', 'cancel', '--tid', one(b2).tid, '--card', 'card.img');
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(one(cancel)).toMatchObject({ status: 'deleted', refund: { kind: 'refund', price: 55300 } });
    const list = await cli(env, '--json', 'service', 'list', '--train', 'G1');
    expect(one(list).services[0].classes[0].seatsLeft).toBe(1);
  }, 300_000);

  it('after two rotations a bill of each key, a pki and a sym receipt verify; tampered ones fail with the reason (exit 5)', async () => {
    const svc = await cli(env, '--json', 'service', 'add', '--train', 'K9', '--date', '2030-01-16', '--class', '1:10:9900');
    const id = String(one(svc).service.serviceId);
    const bills: Record<string, unknown>[] = [];
    const book = async () => {
      const r = await cli(env, '--json', 'book', '--service', id, '--class', '1', '--card', 'other.img');
      expect(r.code, r.stderr).toBe(0);
      bills.push(one(r).bill);
      return one(r).tid as string;
    };
    await book();
    const r1 = await cli(env, '--json', 'keys', 'rotate', '--valid-days', '3');
    expect(r1.code, r1.stderr).toBe(0);
    const tid1 = await book();
    const r2 = await cli(env, '--json', 'keys', 'rotate');
    expect(r2.code, r2.stderr).toBe(0);
    expect(one(r2).retired).toBe(one(r1).key.keyId);
    await book();
    const keys = one(await cli(env, '--json', 'keys', 'list')).keys as { keyId: string; role: string; current: boolean; retiredAt?: string }[];
    expect(keys.map((k) => k.role)).toEqual(['root', 'signing', 'signing']);
    expect(keys.filter((k) => k.current).map((k) => k.keyId)).toEqual([one(r2).key.keyId]);
    expect(bills.map((b) => b.keyId)).toEqual([keys[0].keyId, keys[1].keyId, keys[2].keyId]);

    for (const [i, b] of bills.entries()) {
      writeFileSync(join(dir, `bill${i}.json`), JSON.stringify(b));
      const v = await cli(env, '--json', 'verify', `bill${i}.json`);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect(one(v)).toMatchObject({ ok: true, kind: 'bill', validAtTime: true, signer: { keyId: b.keyId } });
    }
    writeFileSync(join(dir, 'forged.json'), JSON.stringify({ ...bills[1], price: 1 }));
    const forged = await cli(env, 'verify', 'forged.json');
    expect(forged.code).toBe(5);
    expect(forged.stdout).toMatch(/INVALID bill: bill signature does not verify with key/);

    const pki = await cli(env, '--json', 'use', '--card', 'other.img', '--tid', tid1, '--event', 'punch');
    const sym = await cli(env, '--json', 'use', '--card', 'other.img', '--tid', tid1, '--event', 'paper-printed', '--mode', 'sym');
    expect([pki.code, sym.code], pki.stderr + sym.stderr).toEqual([0, 0]);
    for (const r of [pki, sym]) {
      const v = await cli({ ...env, stdin: r.stdout }, '--json', 'verify', '-');
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect(one(v)).toMatchObject({ ok: true, kind: 'receipt', subject: { tid: tid1 } });
      const receipt = one(r).receipt as string;
      const flipped = receipt.slice(0, 20) + (receipt[20] === '0' ? '1' : '0') + receipt.slice(21);
      const bad = await cli({ ...env, stdin: JSON.stringify({ ...one(r), receipt: flipped }) }, 'verify', '-');
      expect(bad.code, bad.stdout + bad.stderr).toBe(5);
      expect(bad.stdout).toMatch(/INVALID receipt: .*(does not verify|cannot be traced)/);
    }
    expect(one(await cli({ ...env, stdin: sym.stdout }, '--json', 'verify', '-')).signer).toMatchObject({ role: 'master' });
  }, 300_000);
});
