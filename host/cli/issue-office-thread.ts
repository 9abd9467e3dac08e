// The back-office thread of `eticket issue` (issue-office.ts): opens the working directory's store and back office,
// serves the batch's calls one message each, and closes the store when told to. Runs only as a worker thread.

import { parentPort, workerData } from 'node:worker_threads';
import { pgliteAssets } from '../../backoffice/store/database.js';
import { crossError, officeOf, type FromThread, type IssueOffice, type KeyHandover, type OfficeCall, type OfficeThreadData, type ToThread } from './issue-office.js';
import type { PrestartData } from './office-prestart.js';
import { baselineWasmOnly, openStoreDatabase } from './store-open.js';

const port = parentPort;
if (!port) throw new Error('issue-office-thread runs as a worker thread of `eticket issue`');
const start = workerData as OfficeThreadData | PrestartData;
const send = (m: FromThread) => port.postMessage(m);

/**
 * What to open: given at the start, or (a thread prestarted by bin/eticket.mjs, office-prestart.ts) in a message once
 * the command has parsed its options and read the passphrase.
 */
const config = new Promise<OfficeThreadData>((resolve) => {
  if (!('prestart' in start)) return resolve(start);
  port.on('message', (m: ToThread) => {
    if ('open' in m) resolve(m.open);
  });
});

/** Aborted when the command gives up before the store is open: the wait for another process's lock ends at once. */
const giveUp = new AbortController();
port.on('message', (m: ToThread) => {
  if ('abort' in m) giveUp.abort();
});

/** The authority key from the command's thread (issue-office.ts KeyHandover), its first message after the opening. */
const handover = new Promise<KeyHandover>((resolve) => {
  port.on('message', (m: ToThread) => {
    if ('handover' in m) resolve(m.handover);
  });
});

/**
 * A prestarted thread works ahead while it waits for the command: the back office's modules, and PGlite's WebAssembly
 * compiled as a short command runs it (baseline code only, store-open.ts) and its files read, unless the command names
 * a PostgreSQL server.
 */
const ahead =
  'prestart' in start
    ? {
        modules: Promise.all([import('./store.js'), import('./workdir.js')]),
        pglite: start.compilePglite ? (baselineWasmOnly(), pgliteAssets()) : undefined,
      }
    : undefined;
ahead?.modules.catch(() => undefined); // awaited in open(); a failure is reported there

/** Calls received and not yet answered: the store closes after them. */
const inFlight = new Set<Promise<unknown>>();

function serve(office: IssueOffice): void {
  send({ ready: true, operator: office.operator });
  port!.on('message', (m: ToThread) => {
    if (!('call' in m)) return;
    if (m.call === 'close') {
      void Promise.allSettled(inFlight)
        .then(() => office.close())
        .then(
          () => send({ id: m.id, value: undefined }),
          (e) => send({ id: m.id, error: crossError(e) }),
        )
        .finally(() => port!.close());
      return;
    }
    const done = call(office, m).then(
      (value) => send({ id: m.id, value }),
      (e) => send({ id: m.id, error: crossError(e) }),
    );
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  });
}

function call(office: IssueOffice, m: Extract<ToThread, { call: OfficeCall }>): Promise<unknown> {
  const [a] = m.args as [never];
  switch (m.call) {
    case 'issueMany':
      // Each row's own error crosses as one too (the batch reports it by class: conflict, not found, bad input).
      return office.issueMany(a).then((rows) => rows.map((x) => ('error' in x ? { error: crossError(x.error) } : x)));
    case 'markLoadedMany':
      return office.markLoadedMany(a);
    case 'withdrawUnloaded':
      return office.withdrawUnloaded(a);
    case 'tidForRequest':
      return office.tidForRequest(a);
    case 'ticket':
      return office.ticket(a);
    case 'client':
      return office.client(a);
  }
}

async function open(): Promise<IssueOffice> {
  const data = await config;
  // The database first: PGlite's WebAssembly compiles off this thread while the back office's modules load here.
  const database = openStoreDatabase(data.settings, data.dir, { assets: ahead?.pglite, signal: giveUp.signal });
  database.catch(() => undefined); // awaited by openBackofficeWith; a failure before then is not unhandled
  let modules: [typeof import('./store.js'), typeof import('./workdir.js')];
  try {
    modules = await (ahead?.modules ?? Promise.all([import('./store.js'), import('./workdir.js')]));
  } catch (e) {
    await database.then((db) => db.close()).catch(() => undefined);
    throw e;
  }
  const [{ openBackofficeWith }, { WorkDir }] = modules;
  let w: ReturnType<typeof WorkDir.open>;
  try {
    w = WorkDir.open(data.dir);
  } catch (e) {
    await database.then((db) => db.close()).catch(() => undefined);
    throw e;
  }
  // The authority key as the command's thread opened it; else (a legacy key file, or a file changed in between) its
  // scrypt on the thread pool meanwhile. Either way the first chunk's signatures find it opened. A failure here is
  // left to the signing itself, which throws it with its context. Awaited before the first call is served: PGlite's
  // statements resolve without a turn of the event loop, so the key would otherwise arrive only after the first chunk
  // had derived it again, synchronously (seen in a profile: 0.2-0.45 s of this thread).
  const warmed = handover
    .then((h) => {
      if ('none' in h || ('key' in h && w.adoptAuthoritySigner(data.passphrase, h.key))) return;
      return w.warmAuthoritySigner(data.passphrase);
    })
    .catch(() => undefined);
  const opened = await openBackofficeWith(data.settings, w, data.passphrase, {}, { database });
  await warmed;
  return officeOf(opened);
}

open().then(serve, (e) => {
  // Told to the main thread, which reports it as the command's error; the thread then ends.
  send({ openFailed: crossError(e) });
  port.close();
});
