// The PC/SC agent: a child process that holds npm pcsclite and its native calls on behalf of PcscTransport,
// so that a call stuck in a frozen pcscd blocks this process, which the transport can kill, never the caller.
//
// Plain JavaScript on purpose: it starts with bare `node` in ~0.1 s, from the sources and from a build alike.
// Protocol (JSON over the IPC channel; bytes in hex), see host/transport/pcsc.ts `AgentRequest`/`AgentMessage`:
//   agent → parent  { ev: 'hello', ok, message? }                      once, after loading the binding
//   parent → agent  { id, op: 'open', ctx }                            SCardEstablishContext + reader list
//                   { id, op: 'connect', ctx, reader, share, protocol }
//                   { id, op: 'transmit', ctx, reader, data, max, protocol }
//                   { id, op: 'disconnect', ctx, reader, disposition }
//                   { op: 'close', ctx }                               no reply: it may block on a reader lock
//   agent → parent  { id, ok: true, value? } | { id, ok: false, message }
//                   { ev: 'list', ctx, names?, message? }              every reader list pcscd reports
//                   { ev: 'status', ctx, reader, state, atr? }  { ev: 'end', ctx, reader }
'use strict';

// A parent that went away cannot close us, and a native call stuck in pcscd would make a normal exit wait
// for it forever (libuv joins its worker threads at exit): leave by SIGKILL, which nothing can hold up.
function die() {
  process.kill(process.pid, 'SIGKILL');
}
process.on('disconnect', die);
// While this thread is blocked inside a native call (SCardEstablishContext on a frozen pcscd), it cannot hear
// the disconnect: a small thread of its own watches for the parent's death (we are re-parented) and kills us.
{
  const { Worker } = require('node:worker_threads');
  const watcher = new Worker(
    `const parent = ${process.ppid};
     setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, 500);`,
    { eval: true },
  );
  watcher.unref();
}

function send(message) {
  if (process.connected) process.send(message);
}

function text(error) {
  return error instanceof Error ? error.message : String(error);
}

let factory;
try {
  factory = require('pcsclite');
} catch (error) {
  send({ ev: 'hello', ok: false, message: text(error).split('\n')[0] });
  // Stay until the parent has read the reason and disconnects.
}

/** ctx id → { native, readers: Map<name, CardReader> } */
const contexts = new Map();

function reader(ctx, name) {
  const c = contexts.get(ctx);
  const r = c && c.readers.get(name);
  if (!r) throw new Error(`no reader "${name}" in this context`);
  return r;
}

function open(ctx) {
  // SCardEstablishContext runs here, synchronously: if pcscd hangs, so does this process, not the caller.
  const native = factory();
  const entry = { native, readers: new Map() };
  contexts.set(ctx, entry);
  // close() makes pcsclite emit 'error' ("Command cancelled"), and so does a lost pcscd.
  native.on('error', (error) => send({ ev: 'list', ctx, message: text(error) }));
  native.on('reader', (r) => {
    entry.readers.set(r.name, r);
    r.on('error', () => undefined);
    r.on('status', (status) =>
      send({ ev: 'status', ctx, reader: r.name, state: status.state, atr: status.atr ? status.atr.toString('hex') : undefined }),
    );
    r.on('end', () => {
      entry.readers.delete(r.name);
      send({ ev: 'end', ctx, reader: r.name });
    });
  });
  // pcsclite's start callback runs on every change of the reader list, before its 'reader' events:
  // the only place that knows the whole list, empty lists included.
  const start = native.start.bind(native);
  native.start = (cb) =>
    start((err, data) => {
      cb(err, data);
      if (!err) send({ ev: 'list', ctx, names: Object.keys(native.readers || {}) });
    });
}

// npm pcsclite's close() stops a context's status threads but releases its PC/SC contexts (one for the reader
// list, two per reader: about five sockets to pcscd) only in the C++ destructor, when the object is garbage
// collected. This process allocates little and may never collect: every closed context stayed open in pcscd,
// about 30 a vector run, until pcscd (200 client threads) stopped answering new ones ("pcscd did not list its
// readers"). So the agent collects shortly after it closes contexts (global.gc from --expose-gc; a few ms).
let collectTimer;
function collectSoon() {
  if (collectTimer || typeof global.gc !== 'function') return;
  collectTimer = setTimeout(() => {
    collectTimer = undefined;
    global.gc();
  }, 20);
}

function close(ctx) {
  const c = contexts.get(ctx);
  if (!c) return;
  contexts.delete(ctx);
  collectSoon();
  for (const r of c.readers.values()) {
    try {
      r.close();
    } catch {
      // Already gone with its reader.
    }
  }
  try {
    c.native.close();
  } catch {
    // pcscd may have vanished first.
  }
}

function reply(id) {
  return (err, value) => {
    if (err) send({ id, ok: false, message: text(err) });
    else send({ id, ok: true, value });
  };
}

process.on('message', (m) => {
  if (m.op === 'close') return close(m.ctx);
  const done = reply(m.id);
  try {
    if (!factory) throw new Error('PC/SC binding not loaded');
    switch (m.op) {
      case 'open':
        open(m.ctx);
        return done(null);
      case 'connect':
        return reader(m.ctx, m.reader).connect({ share_mode: m.share, protocol: m.protocol }, (err, protocol) => done(err, protocol));
      case 'transmit':
        return reader(m.ctx, m.reader).transmit(Buffer.from(m.data, 'hex'), m.max, m.protocol, (err, response) =>
          done(err, response ? response.toString('hex') : undefined),
        );
      case 'disconnect':
        return reader(m.ctx, m.reader).disconnect(m.disposition, (err) => done(err));
      default:
        throw new Error(`unknown operation ${m.op}`);
    }
  } catch (error) {
    done(error);
  }
});

if (factory) send({ ev: 'hello', ok: true });
