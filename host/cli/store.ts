// The CLI's door to the back office: open the working directory's store (embedded PGlite, or a PostgreSQL
// server with --database / ETICKET_DATABASE_URL), with the key custody of the working directory's keys/.
// An old working directory's ledger.json is imported the first time, so its TIDs stay taken.

import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Backoffice, type KeyCustody } from '../../backoffice/service.js';
import { Store } from '../../backoffice/store/store.js';
import type { Database } from '../../backoffice/store/database.js';
import { openStoreDatabase, storeSettings, type StoreSettings } from './store-open.js';
import { sm9Provider } from '../../sdk/crypto/sm9-suite.js';
import type { Signer } from '../../sdk/crypto/suite.js';
import { InvalidInputError } from '../../sdk/errors.js';
import { UsageError } from './context.js';
import { MissingHolderKeyError, type WorkDir } from './workdir.js';
import type { HolderVault, RealNameOptions } from '../../backoffice/realname.js';

export const SM9_SIGNER_KIND = 'sm9-signer';

/** The passphrase was not given to a command that turned out to need a private key. */
export class PassphraseNeededError extends UsageError {}

/** Private keys of the working directory, opened with the passphrase only when a command signs. */
export function workDirCustody(w: WorkDir, passphrase: string | undefined): KeyCustody {
  const need = (what: string): string => {
    if (passphrase === undefined) throw new PassphraseNeededError(`${what} needs the passphrase: set ETICKET_PASSPHRASE`);
    return passphrase;
  };
  let root: Signer | undefined;
  let masters: ReturnType<WorkDir['loadMasterKey']>[] | undefined;
  let vault: HolderVault | undefined;
  return {
    operator: w.config.operator,
    suite: w.config.suite,
    rootPublicKey: w.authorityPublicKey,
    root: () => (root ??= w.loadAuthoritySigner(need('signing with the authority key'))),
    signing: (rec) => {
      const pass = need(`signing with key ${rec.keyId}`);
      return w.config.suite === 'sm9' ? sm9Provider.signer(w.keys.getBytes(rec.keyName, pass, SM9_SIGNER_KIND)) : w.keys.getRsa(rec.keyName, pass);
    },
    cardTrust: w.cardTrust(),
    masterKeys: () => (masters ??= w.hasMasterKey && passphrase !== undefined ? [w.loadMasterKey(passphrase)] : []),
    holderVault: () => {
      if (!w.hasHolderKey) throw new MissingHolderKeyError(w.dir);
      return (vault ??= w.holderVault(need('real-name holder data')));
    },
  };
}

/** Legacy ledger.json ({counter, tids, cards?, requests?}), as sdk FileLedger and the old CLI wrote it. */
interface LegacyLedger {
  counter: number;
  tids: string[];
  cards?: Record<string, string>;
  requests?: Record<string, string>;
}

/** Import ledger.json into the store (once), then rename it ledger.json.imported. Returns the TIDs imported. */
export async function importLedger(store: Store, w: WorkDir): Promise<number | undefined> {
  const file = join(w.dir, 'ledger.json');
  if (!existsSync(file)) return undefined;
  let data: LegacyLedger;
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as LegacyLedger;
  } catch (e) {
    throw new InvalidInputError(`ticket ledger ${file} is not valid JSON: restore it from a backup, then run \`eticket init --migrate\``, { cause: e });
  }
  if (!Number.isInteger(data.counter) || !Array.isArray(data.tids)) throw new InvalidInputError(`ticket ledger ${file} is damaged: restore it from a backup`);
  const byTid = new Map<string, string>();
  for (const [fp, tid] of Object.entries(data.requests ?? {})) if (!byTid.has(tid)) byTid.set(tid, fp);
  const n = await store.importLedgerTids(
    w.config.operator,
    data.tids.map((tid) => ({ tid, card: data.cards?.[tid], requestKey: byTid.get(tid) })),
    data.counter,
  );
  renameSync(file, `${file}.imported`);
  return n;
}

export interface OpenedBackoffice {
  store: Store;
  bo: Backoffice;
  close(): Promise<void>;
}

export { databaseUrl, storeSettings, type StoreSettings } from './store-open.js';

/**
 * Open the store for `w` (creating the embedded one if needed), check it belongs to this operator, import a
 * legacy ledger, and wrap it in the back-office service. Close it when done (the embedded store is locked).
 */
export async function openBackoffice(cmd: Command, w: WorkDir, passphrase?: string, realName: RealNameOptions = {}, options: { longRunning?: boolean } = {}): Promise<OpenedBackoffice> {
  return openBackofficeWith(storeSettings(cmd), w, passphrase, realName, options);
}

/**
 * openBackoffice from settings: also where no Command is at hand (the issue command's thread, which passes the
 * database it started opening before the back office's modules were loaded: `database`).
 */
export async function openBackofficeWith(settings: StoreSettings, w: WorkDir, passphrase?: string, realName: RealNameOptions = {}, options: { longRunning?: boolean; database?: Promise<Database>; signal?: AbortSignal } = {}): Promise<OpenedBackoffice> {
  const db = await (options.database ?? openStoreDatabase(settings, w.dir, options));
  let store: Store;
  try {
    store = await Store.over(db);
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
  try {
    const operator = await store.initSetting('operator', w.config.operator);
    const suite = await store.initSetting('suite', w.config.suite);
    if (operator !== w.config.operator || suite !== w.config.suite) {
      throw new UsageError(`the store ${settings.url ? 'at the database URL' : 'of this working directory'} belongs to operator ${operator} (${suite}), this working directory is ${w.config.operator} (${w.config.suite})`);
    }
    const bo = new Backoffice(store, workDirCustody(w, passphrase), undefined, realName);
    await bo.ensureRootKey(new Date(w.config.created));
    const imported = await importLedger(store, w);
    if (imported !== undefined && !settings.json) console.error(`eticket: imported ${imported} TID(s) from ledger.json into the store (kept as ledger.json.imported)`);
    return { store, bo, close: () => store.close() };
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
}

/** Run `fn` with the back office open, closing it whatever happens. */
export async function withBackoffice<T>(cmd: Command, w: WorkDir, passphrase: string | undefined, fn: (o: OpenedBackoffice) => Promise<T>): Promise<T> {
  const o = await openBackoffice(cmd, w, passphrase);
  try {
    return await fn(o);
  } finally {
    await o.close().catch(() => undefined);
  }
}
