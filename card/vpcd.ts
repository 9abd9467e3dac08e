// Exposes any Icc to the OS's PC/SC stack as a virtual card: connects to vpcd (the vsmartcard driver inside
// pcscd) over TCP and answers its frames. Connecting inserts the card into the reader, closing removes it.

import net from 'node:net';
import type { Icc } from '../sdk/icc.js';

/** vpcd's first port: reader "Virtual PCD 00 00"; slot n listens on VPCD_PORT + n. */
export const VPCD_PORT = 35963;

/** Port of vpcd slot `slot` (0 → "Virtual PCD 00 00", 1 → "Virtual PCD 00 01"). */
export function vpcdPort(slot: number): number {
  return VPCD_PORT + slot;
}

// Control frames are the only 1-byte payloads: no APDU is shorter than 4 bytes.
const CTRL_POWER_OFF = 0x00;
const CTRL_POWER_ON = 0x01;
const CTRL_RESET = 0x02;
const CTRL_GET_ATR = 0x04;

/** What the bridge observed; `inserted`/`removed` follow the TCP connection to vpcd. */
export type VpcdEvent =
  | { type: 'inserted' }
  | { type: 'removed'; reason: string }
  | { type: 'error'; error: Error }
  | { type: 'power'; on: boolean }
  | { type: 'reset' }
  | { type: 'apdu'; command: Uint8Array; response: Uint8Array };

/** Whether and how the bridge reconnects when vpcd (pcscd) goes away. */
export interface ReconnectPolicy {
  /** First retry delay; doubles up to maxDelayMs. Default 200. */
  delayMs?: number;
  /** Default 2000. */
  maxDelayMs?: number;
}

/** Where vpcd listens and how the bridge behaves when it drops. */
export interface VpcdBridgeOptions {
  /** vpcd's address. IPv4 loopback by default: the Debian driver listens on 0.0.0.0 only. */
  host?: string;
  /** Default 35963 ("Virtual PCD 00 00"); 35964 is "Virtual PCD 00 01". */
  port?: number;
  /**
   * Reconnect when vpcd closes the connection (pcscd restarted) or refuses it (not up yet),
   * until close(). Off by default: a bridge that comes back on its own would re-insert a card
   * a test meant to remove.
   */
  reconnect?: boolean | ReconnectPolicy;
}

/** Bridges one Icc to one vpcd slot. Several bridges on different ports make several cards. */
export class VpcdBridge {
  readonly host: string;
  readonly port: number;
  private socket: net.Socket | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | undefined;
  private retryDelay: number;
  private readonly reconnect: Required<ReconnectPolicy> | undefined;
  private readonly listeners = new Set<(event: VpcdEvent) => void>();

  constructor(
    readonly icc: Icc,
    options: VpcdBridgeOptions = {},
  ) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? VPCD_PORT;
    const r = options.reconnect;
    this.reconnect = r ? { delayMs: 200, maxDelayMs: 2000, ...(r === true ? {} : r) } : undefined;
    this.retryDelay = this.reconnect?.delayMs ?? 0;
  }

  /** True while the TCP connection to vpcd is up, i.e. the card is in the reader. */
  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed && !this.socket.connecting;
  }

  /** Subscribe to bridge events (inserted, APDU, removed); returns the unsubscribe function. */
  on(listener: (event: VpcdEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Insert the card: resolves once vpcd accepted the connection. Without a reconnect policy a
   * refused connection (pcscd not running, port not configured) rejects; with one, it keeps trying.
   */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('VpcdBridge is closed'));
    if (this.connected) return Promise.resolve();
    if (this.connecting) return this.connecting;
    const done = new Promise<void>((resolve, reject) => {
      const attempt = (): void => {
        const socket = net.createConnection({ host: this.host, port: this.port });
        // vpcd's driver reads the length and the payload separately; one write per frame and no
        // Nagle keeps each reply from waiting on pcscd's delayed ACK.
        socket.setNoDelay(true);
        this.socket = socket;
        this.pending = Buffer.alloc(0);
        let opened = false;
        socket.once('connect', () => {
          opened = true;
          if (this.reconnect) this.retryDelay = this.reconnect.delayMs;
          this.emit({ type: 'inserted' });
          resolve();
        });
        socket.on('data', (chunk) => this.onData(socket, chunk));
        socket.on('error', (error) => {
          if (opened) this.emit({ type: 'error', error });
          else if (!this.reconnect || this.closed) reject(error);
        });
        socket.on('close', () => {
          if (this.socket === socket) this.socket = undefined;
          if (opened) this.emit({ type: 'removed', reason: this.closed ? 'closed' : 'vpcd closed the connection' });
          if (this.closed || !this.reconnect) return;
          // pcscd went away or is not up yet: try again later, with the card "out of the reader".
          const delay = this.retryDelay;
          this.retryDelay = Math.min(this.retryDelay * 2, this.reconnect.maxDelayMs);
          this.retryTimer = setTimeout(attempt, delay);
          this.retryTimer.unref?.();
          // A pending connect() keeps waiting: it resolves on the first successful attempt.
        });
      };
      attempt();
    });
    this.connecting = done;
    const clear = (): void => {
      this.connecting = undefined;
    };
    done.then(clear, clear);
    return done;
  }

  /** Remove the card from the reader and stop any reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  private emit(event: VpcdEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A faulty observer must not take the card out of the reader.
      }
    }
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) break;
      const payload = this.pending.subarray(2, 2 + length);
      this.pending = this.pending.subarray(2 + length);
      const reply = this.handleFrame(payload);
      if (reply) this.send(socket, reply);
    }
  }

  private handleFrame(payload: Uint8Array): Uint8Array | undefined {
    if (payload.length === 0) return undefined;
    if (payload.length === 1) {
      switch (payload[0]) {
        case CTRL_POWER_OFF:
          this.icc.powerOff();
          this.emit({ type: 'power', on: false });
          return undefined;
        case CTRL_POWER_ON:
          this.icc.powerOn();
          this.emit({ type: 'power', on: true });
          return undefined;
        case CTRL_RESET:
          this.icc.reset();
          this.emit({ type: 'reset' });
          return undefined;
        case CTRL_GET_ATR:
          return this.icc.atr();
        default:
          return undefined;
      }
    }
    // Copy: the Icc may keep the command, and the receive buffer is reused.
    const command = Uint8Array.from(payload);
    let response: Uint8Array;
    try {
      response = this.icc.transmit(command);
    } catch {
      // The Icc contract says it never throws; if it does, answer like a card with a fault, not silence
      // (a virtual card that stops answering freezes pcscd for every client).
      response = Uint8Array.of(0x6f, 0x00);
    }
    this.emit({ type: 'apdu', command, response });
    return response;
  }

  private send(socket: net.Socket, payload: Uint8Array): void {
    if (payload.length > 0xffff) payload = Uint8Array.of(0x6f, 0x00);
    const frame = Buffer.allocUnsafe(2 + payload.length);
    frame.writeUInt16BE(payload.length, 0);
    frame.set(payload, 2);
    socket.write(frame);
  }
}
