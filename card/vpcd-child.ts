// Runs a virtual card (any Icc, built by a module export) behind a VpcdBridge in a child process.
// A card on the same event loop as a blocking PC/SC call deadlocks pcscd; killing the child pulls the card.

import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ReconnectPolicy, VpcdTiming } from './vpcd.js';

/** Where to find the function that builds the card: `await import(module)[exportName](...args)`. */
export interface IccFactorySpec {
  /** Absolute path or file: URL of the module. */
  module: string | URL;
  /** Name of the exported factory; it may return the Icc or a promise of it. */
  export: string;
  /** JSON-serialisable arguments for the factory (e.g. an image path). */
  args?: unknown[];
}

/** Where the card process connects (the vpcd port of a reader slot) and how long it may take to appear. */
export interface VpcdChildOptions {
  host?: string;
  /** vpcd port, default 35963. */
  port?: number;
  reconnect?: boolean | ReconnectPolicy;
  /** How the bridge tells control frames from 1-byte APDUs, and its silence watchdog (see VpcdTiming). */
  timing?: VpcdTiming;
  /** Until vpcd has polled the card (accepted it, not just its TCP connect). Default 15 s. Then waitForCard. */
  startTimeoutMs?: number;
}

/** @internal what the child gets in argv[2]. */
export interface ChildConfig {
  module: string;
  export: string;
  args?: unknown[];
  host?: string;
  port?: number;
  reconnect?: boolean | ReconnectPolicy;
  timing?: VpcdTiming;
}
/** @internal */
export type ChildMessage =
  | { type: 'ready'; atr: string }
  | { type: 'error'; message: string }
  | { type: 'inserted' }
  | { type: 'removed'; reason: string }
  | { type: 'resync'; reason: string };
/** @internal */
export type ParentMessage = { type: 'stop' };

/** How a card process ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A card running in its own process behind pcscd's virtual reader (see startVpcdChild). */
export class VpcdChild {
  /** Resolves when the process has exited, however it ended. */
  readonly exited: Promise<ChildExit>;

  constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    /** The ATR the card reported at start. */
    readonly atr: Uint8Array,
    exited: Promise<ChildExit>,
  ) {
    this.exited = exited;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'resync') this.resyncs.push(message.reason);
    });
  }

  /** Why the bridge took the card out and put it back (its silence watchdog), oldest first. */
  readonly resyncs: string[] = [];

  /** Process id of the card process. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the card process is still alive. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Take the card out cleanly (the bridge closes its socket), then let the process end. */
  async stop(timeoutMs = 3000): Promise<ChildExit> {
    if (!this.running) return this.exited;
    if (this.child.connected) this.child.send({ type: 'stop' } satisfies ParentMessage);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Pull the card abruptly: the process dies mid-whatever, as a card yanked from a reader. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildExit> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}

const here = fileURLToPath(import.meta.url);
const runningAsTs = here.endsWith('.ts');

function childEntry(): string {
  return fileURLToPath(new URL(runningAsTs ? './vpcd-child-main.ts' : './vpcd-child-main.js', import.meta.url));
}

/** Node 20 cannot load .ts itself: the child gets tsx's loader (a project dependency) when we run from source. */
function childExecArgv(): string[] {
  if (!runningAsTs) return [];
  const loader = createRequire(import.meta.url).resolve('tsx');
  return ['--import', pathToFileURL(loader).href];
}

/** Fork a card process and wait until its card is in the vpcd reader. */
export function startVpcdChild(spec: IccFactorySpec, options: VpcdChildOptions = {}): Promise<VpcdChild> {
  const moduleRef = spec.module instanceof URL ? spec.module.href : spec.module;
  const config: ChildConfig = {
    module: moduleRef,
    export: spec.export,
    args: spec.args,
    host: options.host,
    port: options.port,
    reconnect: options.reconnect,
    timing: options.timing,
  };
  const child = fork(childEntry(), [JSON.stringify(config)], {
    execArgv: childExecArgv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // A fork failure surfaces as 'error'; without a listener it would crash the caller.
  child.on('error', () => undefined);

  return new Promise<VpcdChild>((resolve, reject) => {
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.off('message', onMessage);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(new Error(`vpcd card process (${spec.export} from ${moduleRef}, port ${options.port ?? 35963}): ${message}`));
    };
    const timer = setTimeout(
      () => fail(`no card in the reader after ${options.startTimeoutMs ?? 15_000} ms`),
      options.startTimeoutMs ?? 15_000,
    );
    const onMessage = (message: ChildMessage): void => {
      if (message.type === 'ready') {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(new VpcdChild(child, options.port ?? 35963, Uint8Array.from(Buffer.from(message.atr, 'hex')), exited));
      } else if (message.type === 'error') {
        fail(message.message);
      }
    };
    child.on('message', onMessage);
    void exited.then(({ code, signal }) => fail(`exited early (code ${code}, signal ${signal})`));
  });
}
