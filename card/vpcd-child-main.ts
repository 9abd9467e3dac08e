// Entry point of a card process: builds an Icc from a module export and serves it to vpcd until told to stop.
// Started by vpcd-child.ts; a separate process keeps the card off the event loop of blocking PC/SC callers.

import { pathToFileURL } from 'node:url';
import type { Icc } from '../sdk/icc.js';
import { VpcdBridge } from './vpcd.js';
import type { ChildConfig, ChildMessage, ParentMessage } from './vpcd-child.js';

function send(message: ChildMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const url = config.module.startsWith('file:') ? config.module : pathToFileURL(config.module).href;
  const mod = (await import(url)) as Record<string, unknown>;
  const factory = mod[config.export];
  if (typeof factory !== 'function') throw new Error(`${config.module} has no function export "${config.export}"`);
  const icc = (await (factory as (...args: unknown[]) => Icc | Promise<Icc>)(...(config.args ?? []))) as Icc;

  const bridge = new VpcdBridge(icc, { host: config.host, port: config.port, reconnect: config.reconnect, timing: config.timing });
  let stopping = false;
  const stop = async (code: number): Promise<never> => {
    stopping = true;
    await bridge.close();
    if (process.connected) process.disconnect();
    process.exit(code);
  };
  bridge.on((event) => {
    if (event.type === 'removed' && !stopping) {
      send({ type: 'removed', reason: event.reason });
      // Without reconnecting, a card vpcd dropped is out for good: nothing left to serve.
      if (!config.reconnect) void stop(0);
    } else if (event.type === 'inserted') {
      send({ type: 'inserted' });
    } else if (event.type === 'resync') {
      send({ type: 'resync', reason: event.reason });
    }
  });
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stop') void stop(0);
  });
  // The parent died or dropped us: never leave an orphan card in the reader.
  process.on('disconnect', () => {
    if (!stopping) void stop(0);
  });

  // Ready only once vpcd talks to the card: a TCP connect completes in vpcd's backlog while vpcd still serves the
  // previous card (and a client that connects then transmits to that card's dead socket: 0x80100016).
  const polled = new Promise<void>((resolve) => {
    const off = bridge.on((event) => {
      if (event.type === 'polled') {
        off();
        resolve();
      }
    });
  });
  await bridge.connect();
  await polled;
  send({ type: 'ready', atr: Buffer.from(icc.atr()).toString('hex') });
}

main().catch((error: unknown) => {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
  if (process.connected) process.disconnect();
});
