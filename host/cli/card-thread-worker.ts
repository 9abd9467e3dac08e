// Worker thread of host/cli/card-thread.ts: one card image opened as the emulated card, answering the main thread's
// power and APDU requests in order. A batch's card work (LOAD's decryption, its durable commit) runs here.

import { parentPort, workerData } from 'node:worker_threads';
import { EticketCard } from '../../card/applet.js';
import { FileBackend, NvmCorruptError } from '../../card/nvm.js';
import { LockHeldError } from '../../sdk/file-lock.js';
import type { CardThreadFailure, CardThreadReply, CardThreadRequest } from './card-thread.js';

const port = parentPort!;
/** Set to 1 once the image is checkpointed and closed: the main thread waits on it when it exits (card-thread.ts). */
const closed = new Int32Array((workerData as { closed: SharedArrayBuffer }).closed);
let card: EticketCard | undefined;
let backend: FileBackend | undefined;

function failure(e: unknown): CardThreadFailure {
  if (e instanceof LockHeldError) return { kind: 'lock', message: e.message, resource: e.resource, holder: e.holder };
  if (e instanceof NvmCorruptError) return { kind: 'corrupt', message: e.message };
  return { kind: 'other', message: e instanceof Error ? e.message : String(e), name: e instanceof Error ? e.name : undefined, stack: e instanceof Error ? e.stack : undefined };
}

function close(): void {
  if (!backend) return;
  try {
    // As the in-process emulator does at exit: the journal is emptied, the image file alone is the card.
    card?.checkpoint();
  } finally {
    backend.close();
    backend = undefined;
    card = undefined;
    Atomics.store(closed, 0, 1);
    Atomics.notify(closed, 0);
  }
}

function handle(r: CardThreadRequest): Uint8Array | null {
  if (r.op === 'open') {
    backend = new FileBackend(r.path, true, { lock: true });
    try {
      card = EticketCard.open(backend);
    } catch (e) {
      backend.close();
      backend = undefined;
      throw e;
    }
    return card.atr();
  }
  if (r.op === 'close') {
    close();
    return null;
  }
  if (!card) throw new Error(`the card image is not open (${r.op})`);
  switch (r.op) {
    case 'powerOn':
      card.powerOn();
      return card.atr();
    case 'powerOff':
      card.powerOff();
      return null;
    case 'reset':
      card.reset();
      return card.atr();
    case 'transmit':
      return card.transmit(r.apdu);
  }
}

port.on('message', (r: CardThreadRequest) => {
  let reply: CardThreadReply;
  try {
    reply = { id: r.id, ok: true, value: handle(r) };
  } catch (e) {
    reply = { id: r.id, ok: false, error: failure(e) };
  }
  port.postMessage(reply);
  if (r.op === 'close') port.close();
});
