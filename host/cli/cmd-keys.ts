// `eticket keys list | rotate`: the authority's key history, and rotation of its signing key (a new key
// certified by the root key that cards hold, A4; SM9: a new authority identity extracted by the KGC).

import type { Command } from 'commander';
import { hex } from '../../sdk/bytes.js';
import type { RsaKeySize, RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import type { Signer } from '../../sdk/crypto/suite.js';
import type { AuthorityKeyRecord } from '../../backoffice/store/store.js';
import { intArg } from './cmd-card.js';
import { emit, passphrase, UsageError, workDir } from './context.js';

const iso = (d?: Date) => d?.toISOString().replace('.000Z', 'Z');

export function keyJson(k: AuthorityKeyRecord, current?: string): Record<string, unknown> {
  return { keyId: k.keyId, role: k.role, suite: k.suite, identity: k.identity, certifiedBy: k.certifiedBy, validFrom: iso(k.validFrom), validUntil: iso(k.validUntil), retiredAt: iso(k.retiredAt), current: k.keyId === current, certificate: k.certificate && hex(k.certificate) };
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description("the authority's keys: history and rotation").addHelpText('after', '\nExample:\n  $ eticket keys list\n  $ eticket keys rotate --valid-days 30');

  keys
    .command('list')
    .description('every authority key, current and retired, with its validity (arbitration verifies old signatures with them)')
    .addHelpText('after', '\nExample:\n  $ eticket keys list --json')
    .action(async (_opts: unknown, cmd: Command) => {
      const [w, { TFV_SIGNED_BY }, { withBackoffice }] = await Promise.all([workDir(cmd), import('../../backoffice/service.js'), import('./store.js')]);
      await withBackoffice(cmd, w, undefined, async ({ store, bo }) => {
        const list = await store.authorityKeys(w.config.operator);
        const current = (await store.currentSigningKey(bo.operator))?.keyId;
        emit(
          cmd,
          { keys: list.map((k) => keyJson(k, current)), tfvSignedBy: TFV_SIGNED_BY },
          list.map((k) => `${k.keyId} ${k.role.padEnd(7)} ${iso(k.validFrom)} → ${iso(k.validUntil) ?? 'open'}${k.retiredAt ? ` retired ${iso(k.retiredAt)}` : ''}${k.keyId === current ? '  (signs bills now)' : ''}${k.identity ? `  ${k.identity}` : ''}`),
        );
      });
    });

  keys
    .command('rotate')
    .description('make a new signing key, certified by the root key, for bills (and, once cards accept certified keys, for tickets); the previous one is retired and kept')
    .option('--valid-days <n>', 'validity of the new key in days', intArg('valid-days'), 30)
    .option('--scope <operator...>', 'operators the key may sign for (default: this working directory\'s)')
    // "root" is backoffice/service.ts TFV_SIGNED_BY (pinned by service.test.ts), written out: --help loads no back office.
    .addHelpText('after', `\nTF_V is signed by the root key until the card protocol takes certified keys (apdu-spec README 3.6).\n\nExample:\n  $ eticket keys rotate --valid-days 1\n  $ eticket keys rotate --json`)
    .action(async (opts: { validDays: number; scope?: string[] }, cmd: Command) => {
      if (opts.validDays < 1 || opts.validDays > 3660) throw new UsageError('--valid-days is 1..3660');
      const w = await workDir(cmd);
      const pass = await passphrase();
      const root = w.loadAuthoritySigner(pass);
      const [{ RsaPrivateKey }, { sm9Provider }, { keyId }, { SM9_SIGNER_KIND, withBackoffice }] = await Promise.all([
        import('../../sdk/crypto/rsa.js'),
        import('../../sdk/crypto/sm9-suite.js'),
        import('../../sdk/crypto/suite.js'),
        import('./store.js'),
      ]);
      await withBackoffice(cmd, w, pass, async ({ store, bo }) => {
        const signingKeys = (await store.authorityKeys(w.config.operator)).filter((k) => k.role === 'signing').length;
        let signer: Signer;
        let identity: string | undefined;
        let keyName: string;
        if (w.config.suite === 'sm9') {
          const kgc = w.loadCardKeyIssuer(pass).kgc!;
          identity = `eticket:authority:${w.config.operator}:${signingKeys + 1}`;
          const encoded = kgc.extractSigningKey(identity);
          signer = sm9Provider.signer(encoded);
          keyName = `authority-${hex(keyId(signer.publicKey))}`;
          w.keys.putBytes(keyName, SM9_SIGNER_KIND, encoded, pass);
        } else {
          const bits = (root as RsaPrivateKey).bits as RsaKeySize;
          const key = RsaPrivateKey.generate(bits);
          signer = key;
          keyName = `authority-${hex(keyId(key.publicKey))}`;
          w.keys.putRsa(keyName, key, pass);
        }
        const previous = await store.currentSigningKey(bo.operator);
        const rec = await bo.rotate({ signer, keyName, identity }, { validDays: opts.validDays, scopes: opts.scope });
        emit(cmd, { ok: true, key: keyJson(rec, rec.keyId), retired: previous?.role === 'signing' ? previous.keyId : undefined }, [
          `new signing key ${rec.keyId}${identity ? ` (${identity})` : ''}, certified by root key ${rec.certifiedBy}, valid until ${iso(rec.validUntil)}`,
          previous?.role === 'signing' ? `  ${previous.keyId} retired (kept to verify what it signed)` : '  bills are now signed with it; tickets (TF_V) still with the root key',
        ]);
      });
    });
}
