// What `eticket issue` asks of the back office, and where that back office runs: on its own worker thread when
// the CLI runs compiled (the store's WebAssembly and the signatures beside the card's LOADs, on the second core), else in process.

import { Worker } from 'node:worker_threads';
import type { Backoffice, IssueInput, IssueOutcome } from '../../backoffice/service.js';
import type { ClientRecord, TicketRecord } from '../../backoffice/store/store.js';
import { StoreUnavailableError } from '../../backoffice/store/database.js';
import type { OpenedBackoffice } from './store.js';
import type { StoreSettings } from './store-open.js';
import type { OpenedSecret } from '../../sdk/roles/keystore.js';
import { takePrestartedIssueOffice } from './office-prestart.js';

export type IssueManyResult = ({ outcome: IssueOutcome } | { error: Error })[];

/** The back-office calls of a batch: issue a chunk, mark what the card took, withdraw what it never got, look up a row. */
export interface IssueOffice {
  readonly operator: string;
  issueMany(inputs: IssueInput[]): Promise<IssueManyResult>;
  markLoadedMany(loaded: { tid: string; sequenceNumber?: number }[]): Promise<string[]>;
  withdrawUnloaded(tids: string[]): Promise<void>;
  tidForRequest(requestKey: string): Promise<string | undefined>;
  ticket(tid: string): Promise<TicketRecord | undefined>;
  client(clientId: string): Promise<ClientRecord | undefined>;
  /** Close the store (the embedded one is locked until then); the office must not be used afterwards. */
  close(): Promise<void>;
}

/** The office over a back office opened in this thread. */
export function officeOf(opened: OpenedBackoffice): IssueOffice {
  const bo: Backoffice = opened.bo;
  return {
    operator: bo.operator,
    issueMany: (inputs) => bo.issueMany(inputs),
    markLoadedMany: (loaded) => bo.markLoadedMany(loaded),
    withdrawUnloaded: (tids) => bo.withdrawUnloaded(tids),
    tidForRequest: (key) => bo.store.tidForRequest(bo.operator, key),
    ticket: (tid) => bo.store.ticket(bo.operator, tid),
    client: (id) => bo.store.client(id),
    close: () => opened.close(),
  };
}

/** The calls the thread serves: IssueOffice's, by name. */
export type OfficeCall = Exclude<keyof IssueOffice, 'operator' | 'close'>;

/** What the main thread gives the back-office thread (workerData). */
export interface OfficeThreadData {
  dir: string;
  passphrase: string;
  settings: StoreSettings;
}

/** An error as it crosses threads: its class by name, its own fields (reason, code, sw...), its cause. */
export interface CrossedError {
  cls: string;
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, unknown>;
  cause?: CrossedError;
}

export function crossError(e: unknown): CrossedError {
  if (!(e instanceof Error)) return { cls: 'Error', name: 'Error', message: String(e), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'cause') continue;
    try {
      fields[k] = structuredClone(v);
    } catch {
      // A field that cannot cross (a function, a handle) is left behind; message and class carry the meaning.
    }
  }
  return { cls: e.constructor.name, name: e.name, message: e.message, stack: e.stack, fields, cause: e.cause === undefined ? undefined : crossError(e.cause) };
}

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * The project's error classes by name, so that an error from the thread is an instance of the same class here
 * (the CLI's exit codes and messages are chosen by class): every Error subclass these modules export.
 */
export async function errorClasses(): Promise<Map<string, ErrorClass>> {
  const modules = await Promise.all([
    import('../../sdk/errors.js'),
    import('../../sdk/file-lock.js'),
    import('../../sdk/files.js'),
    import('../../sdk/holder.js'),
    import('../../sdk/roles/keystore.js'),
    import('../../sdk/roles/realname.js'),
    import('../../backoffice/store/store.js'),
    import('../../backoffice/store/database.js'),
    import('../../backoffice/store/migrate.js'),
    import('../../backoffice/realname.js'),
    import('./context.js'),
    import('./store.js'),
    import('./workdir.js'),
  ]);
  const classes = new Map<string, ErrorClass>();
  for (const m of modules) {
    for (const v of Object.values(m)) {
      if (typeof v === 'function' && v.prototype instanceof Error) classes.set(v.name, v as ErrorClass);
    }
  }
  return classes;
}

export function uncrossError(c: CrossedError, classes: Map<string, ErrorClass>): Error {
  const cls = classes.get(c.cls);
  // Built without its constructor (each class has its own arguments): the prototype, then what the thread had.
  const e: Error = cls ? Object.create(cls.prototype) : new Error(c.message);
  Object.defineProperty(e, 'message', { value: c.message, writable: true, configurable: true });
  Object.assign(e, c.fields);
  if (e.name !== c.name) Object.defineProperty(e, 'name', { value: c.name, writable: true, configurable: true });
  if (c.stack) Object.defineProperty(e, 'stack', { value: c.stack, writable: true, configurable: true });
  if (c.cause) Object.defineProperty(e, 'cause', { value: uncrossError(c.cause, classes), writable: true, configurable: true });
  return e;
}

/**
 * The authority key as the command's thread opened it (it checks the passphrase before anything else): handed to the
 * back office's thread, so that the key's scrypt (0.1-0.3 s of a core) is not run a second time while PGlite boots
 * beside the card. `derive`: that thread opens the key itself (the command's thread did not, e.g. a legacy key file);
 * `none`: the command stops (a wrong passphrase), nothing will be signed.
 */
export type KeyHandover = { key: OpenedSecret } | { derive: true } | { none: true };

/** Messages between the threads. */
export type ToThread = { id: number; call: OfficeCall; args: unknown[] } | { id: number; call: 'close' } | { handover: KeyHandover } | { open: OfficeThreadData } | { abort: true };
export type FromThread = { ready: true; operator: string } | { openFailed: CrossedError } | { id: number; value: unknown } | { id: number; error: CrossedError };

/** The worker's entry, compiled: the thread runs only from dist/ (a TypeScript source has no loader in a worker). */
const THREAD_ENTRY = new URL('./issue-office-thread.js', import.meta.url);

/** Whether this CLI can run the back office on a thread: compiled, and not turned off (ETICKET_STORE_THREAD=0). */
export function canUseThread(): boolean {
  return import.meta.url.endsWith('.js') && process.env.ETICKET_STORE_THREAD !== '0';
}

/**
 * Open the back office of the working directory `dir` for `issue`: on its own thread where canUseThread(), else in
 * this thread. Either way the calls, their answers and their errors (same classes) are the same; the thread only
 * runs beside this one.
 */
export async function openIssueOffice(dir: string, passphrase: string, settings: StoreSettings, authorityKey: Promise<KeyHandover>, signal?: AbortSignal): Promise<IssueOffice> {
  if (!canUseThread()) {
    const [{ openBackofficeWith }, { WorkDir }] = await Promise.all([import('./store.js'), import('./workdir.js')]);
    const w = WorkDir.open(dir);
    const opened = await openBackofficeWith(settings, w, passphrase, {}, { signal });
    // Else opened at the first signature, as any key of this working directory.
    const handed = await authorityKey.catch(() => undefined);
    if (handed && 'key' in handed) w.adoptAuthoritySigner(passphrase, handed.key);
    return officeOf(opened);
  }
  // Loaded when the first error arrives (most batches see none: their modules would cost this thread ~0.1 s of start-up).
  let loading: Promise<Map<string, ErrorClass>> | undefined;
  // Never rejects: classes that failed to load (a broken install) leave each error a plain Error with the thread's
  // name and message, instead of a call (or the opening) that waits for its answer for ever.
  const classes = () => {
    loading ??= errorClasses().catch(() => new Map<string, ErrorClass>());
    return loading;
  };
  // Errors that already arrived are told first (each waits for the classes).
  const afterArrived = () => (loading ?? Promise.resolve()).then(
    () => undefined,
    () => undefined,
  );
  const data: OfficeThreadData = { dir, passphrase, settings };
  // The thread bin/eticket.mjs started for this command (office-prestart.ts), told now what to open; else a new one.
  const prestarted = takePrestartedIssueOffice();
  const worker = prestarted ?? new Worker(THREAD_ENTRY, { workerData: data });
  if (prestarted) worker.postMessage({ open: data } as ToThread);
  // The command gave up (a wrong passphrase, say): the thread stops waiting for another process's store lock.
  signal?.addEventListener('abort', () => worker.postMessage({ abort: true } as ToThread), { once: true });
  // Sent once, before any call: the thread waits for it before it says it is ready.
  void authorityKey.then(
    (handover) => worker.postMessage({ handover } as ToThread),
    () => worker.postMessage({ handover: { none: true } } as ToThread),
  );
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let gone: Error | undefined;
  const stopped = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const opened = new Promise<string>((resolve, reject) => {
    const fail = (e: Error) => {
      gone ??= e;
      reject(gone);
      for (const p of pending.values()) p.reject(gone);
      pending.clear();
    };
    worker.on('message', (m: FromThread) => {
      if ('ready' in m) return resolve(m.operator);
      if ('openFailed' in m) return void classes().then((c) => fail(uncrossError(m.openFailed, c)));
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if ('error' in m) void classes().then((c) => p.reject(uncrossError(m.error, c)));
      else p.resolve(m.value);
    });
    // The thread died (a bug, out of memory): every call waiting and every later one fails with the reason. After
    // the answers before it (each waits for the classes), so that a failed opening is told by its own error.
    worker.on('error', (e) => void afterArrived().then(() => fail(new StoreUnavailableError(`the back office's thread failed: ${e.message}`, { cause: e }))));
    worker.on('exit', (code) => void afterArrived().then(() => fail(new StoreUnavailableError(`the back office's thread stopped (exit ${code})`))));
  });
  let operator: string;
  try {
    operator = await opened;
  } catch (e) {
    await stopped;
    throw e;
  }
  const call = (msg: { call: OfficeCall | 'close'; args?: unknown[] }): Promise<unknown> => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...msg } as ToThread);
    });
  };
  return {
    operator,
    issueMany: async (inputs) => {
      const out = (await call({ call: 'issueMany', args: [inputs] })) as ({ outcome: IssueOutcome } | { error: CrossedError })[];
      if (!out.some((x) => 'error' in x)) return out as IssueManyResult;
      const c = await classes();
      return out.map((x) => ('error' in x ? { error: uncrossError(x.error, c) } : x));
    },
    markLoadedMany: (loaded) => call({ call: 'markLoadedMany', args: [loaded] }) as Promise<string[]>,
    withdrawUnloaded: (tids) => call({ call: 'withdrawUnloaded', args: [tids] }) as Promise<void>,
    tidForRequest: (key) => call({ call: 'tidForRequest', args: [key] }) as Promise<string | undefined>,
    ticket: (tid) => call({ call: 'ticket', args: [tid] }) as Promise<TicketRecord | undefined>,
    client: (id) => call({ call: 'client', args: [id] }) as Promise<ClientRecord | undefined>,
    close: async () => {
      // The thread closes the store (releasing the embedded store's lock), answers, and ends.
      if (!gone) await call({ call: 'close' }).catch(() => undefined);
      await stopped;
    },
  };
}
