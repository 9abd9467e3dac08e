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

// What vpcd's driver sends (vsmartcard 0.8, the one in Debian's vsmartcard-vpcd 3.3; unchanged upstream since):
// every frame is a 2-byte big-endian length and a payload. ifd-vpcd.c turns pcscd's calls into vpcd.c calls:
// - IFDHPowerICC: vicc_poweroff / vicc_poweron / vicc_reset send the 1-byte frames 00 / 01 / 02 and read
//   nothing back; after power on and reset the driver asks for the ATR at once (IFDHGetCapabilities).
// - IFDHGetCapabilities(TAG_IFD_ATR), and IFDHICCPresence on every poll of pcscd (every 400 ms), send the
//   1-byte frame 04 and read one frame back: the ATR.
// - IFDHTransmitToICC sends the APDU as it is, whatever its length, and reads one frame back. A 1-byte APDU
//   is therefore a 1-byte frame, and nothing but its value tells it from a control code. An empty APDU
//   sends no frame at all (vicc_transmit skips the send when the length is 0) but still waits for a reply.
// - vicc_transmit holds the slot's io_lock from its send to the end of its read, and pcscd holds the
//   reader's mutex around every driver call: while the driver waits for a reply, no other frame comes.
// The reads have no timeout: a frame that wants a reply and gets none freezes the reader for every client,
// and a reply nobody asked for is read as the answer to the next request, shifting every answer after it.
const CTRL_POWER_OFF = 0x00;
const CTRL_POWER_ON = 0x01;
const CTRL_RESET = 0x02;
const CTRL_GET_ATR = 0x04;

/** How long a 1-byte 00/01/02 frame waits for a following frame before it counts as an APDU. */
export const DEFAULT_AMBIGUOUS_FRAME_MS = 2000;
/** Silence (nothing owed, no poll) after which the driver must be waiting on a frame it never sent. */
export const DEFAULT_SILENCE_MS = 3000;
/** How long the card stays out when the bridge re-inserts it: over two of pcscd's 400 ms polls. */
export const DEFAULT_REINSERT_DELAY_MS = 1000;

/**
 * What the bridge observed; `inserted`/`removed` follow the TCP connection to vpcd. `polled` is vpcd's first frame
 * on a connection: vpcd has accepted this card (a TCP connect alone proves nothing: it completes in vpcd's listen
 * backlog while vpcd still serves the previous card). It does not prove pcscd saw a previous card leave: when vpcd
 * found the old socket dead inside an exchange, it accepts and polls the new card in its next presence poll and
 * pcscd sees a card throughout. Waiting for the reader to be reported empty before the next card starts
 * (`waitForRemoval`, `pullCard`) is what makes the new card a new insertion.
 */
export type VpcdEvent =
  | { type: 'inserted' }
  | { type: 'polled' }
  | { type: 'removed'; reason: string }
  | { type: 'error'; error: Error }
  | { type: 'power'; on: boolean }
  | { type: 'reset' }
  | { type: 'apdu'; command: Uint8Array; response: Uint8Array }
  /** The bridge took the card out to resynchronise with the driver and puts it back after the reinsert delay. */
  | { type: 'resync'; reason: string };

/** Whether and how the bridge reconnects when vpcd (pcscd) goes away. */
export interface ReconnectPolicy {
  /** First retry delay; doubles up to maxDelayMs. Default 200. */
  delayMs?: number;
  /** Default 2000. */
  maxDelayMs?: number;
}

/** How the bridge tells control frames from APDUs the driver cannot mark (see the notes at the top). */
export interface VpcdTiming {
  /**
   * A 1-byte frame 00, 01 or 02 is power off / power on / reset (no reply) or a 1-byte APDU (reply owed).
   * Any frame that follows proves it was a control code: a driver waiting for a reply sends nothing. After
   * this long without one it was an APDU and gets the card's answer (6700). Power on and reset are followed
   * by 04 at once, power off by pcscd's next poll (400 ms). Default 2000.
   */
  ambiguousFrameMs?: number;
  /**
   * pcscd polls every 400 ms, so silence while the bridge owes nothing means the driver waits on a request
   * it never sent (an empty APDU). The bridge then takes the card out and puts it back, the one move that
   * resynchronises both ends whatever the driver waits for. Default 3000; 0 turns the watchdog off.
   */
  silenceMs?: number;
  /** Time out of the reader during such a resync, so that pcscd's poll sees the card gone. Default 1000. */
  reinsertDelayMs?: number;
}

/** Where vpcd listens, how the bridge behaves when it drops, and how it reads frames it cannot tell apart. */
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
  timing?: VpcdTiming;
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
  private readonly timing: Required<VpcdTiming>;
  private readonly listeners = new Set<(event: VpcdEvent) => void>();
  /** A 1-byte 00/01/02 frame not yet known to be a control code or an APDU. */
  private ambiguous: { value: number; timer: NodeJS.Timeout } | undefined;
  /** Last frame received or reply sent on the current connection; undefined until pcscd's first frame. */
  private lastActivity: number | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private resyncing = false;

  constructor(
    readonly icc: Icc,
    options: VpcdBridgeOptions = {},
  ) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? VPCD_PORT;
    const r = options.reconnect;
    this.reconnect = r ? { delayMs: 200, maxDelayMs: 2000, ...(r === true ? {} : r) } : undefined;
    this.retryDelay = this.reconnect?.delayMs ?? 0;
    this.timing = {
      ambiguousFrameMs: options.timing?.ambiguousFrameMs ?? DEFAULT_AMBIGUOUS_FRAME_MS,
      silenceMs: options.timing?.silenceMs ?? DEFAULT_SILENCE_MS,
      reinsertDelayMs: options.timing?.reinsertDelayMs ?? DEFAULT_REINSERT_DELAY_MS,
    };
  }

  /** True while the TCP connection to vpcd is up, i.e. the card is in the reader. */
  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed && !this.socket.connecting;
  }

  /** True once vpcd has sent a frame on the current connection (see the `polled` event). */
  get polled(): boolean {
    return this.connected && this.lastActivity !== undefined;
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
        this.lastActivity = undefined;
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
          this.forgetConnection();
          if (this.resyncing) return; // resync() reconnects on its own
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
    this.forgetConnection();
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

  private forgetConnection(): void {
    if (this.ambiguous) clearTimeout(this.ambiguous.timer);
    this.ambiguous = undefined;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = undefined;
    this.lastActivity = undefined;
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) break;
      const payload = this.pending.subarray(2, 2 + length);
      this.pending = this.pending.subarray(2 + length);
      // A frame after an ambiguous one proves the driver was not waiting for a reply: it was a control code.
      if (this.ambiguous) this.settleAmbiguous('control');
      const first = this.lastActivity === undefined;
      this.touch();
      if (first) this.emit({ type: 'polled' });
      const reply = this.handleFrame(payload);
      if (reply) {
        this.send(socket, reply);
        // Silence counts from the answer: a command the card computed on for seconds (SM9 on a loaded machine)
        // is not the driver going quiet.
        this.touch();
      }
    }
  }

  /** Record activity and (re)arm the silence watchdog. */
  private touch(): void {
    this.lastActivity = Date.now();
    if (this.timing.silenceMs > 0 && !this.watchdog) this.armWatchdog(this.timing.silenceMs);
  }

  private armWatchdog(ms: number): void {
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      // A timer that fired late (this thread was busy) runs before the socket data that arrived meanwhile is read:
      // judge after the I/O phase, so a poll already waiting counts.
      setImmediate(() => this.judgeSilence());
    }, ms);
    this.watchdog.unref?.();
  }

  private judgeSilence(): void {
    // Re-armed meanwhile by a frame (touch), or nothing to watch.
    if (this.watchdog || this.lastActivity === undefined || !this.connected) return;
    // A reply still owed (an ambiguous frame being timed) is not silence: the driver is waiting on us.
    if (this.ambiguous) return this.armWatchdog(this.timing.silenceMs);
    const quiet = Date.now() - this.lastActivity;
    if (quiet < this.timing.silenceMs) return this.armWatchdog(this.timing.silenceMs - quiet);
    this.resync(`no frame from vpcd for ${quiet} ms: the driver waits for an answer to a request it never sent (an empty APDU)`);
  }

  /** Take the card out, wait for pcscd to see it gone, put it back: both ends start again in step. */
  private resync(reason: string): void {
    const socket = this.socket;
    if (!socket || this.resyncing || this.closed) return;
    this.resyncing = true;
    this.emit({ type: 'resync', reason });
    socket.once('close', () => {
      this.retryTimer = setTimeout(() => {
        this.resyncing = false;
        if (this.closed) return;
        this.connect().catch((error: Error) => this.emit({ type: 'removed', reason: `re-inserting after a resync failed: ${error.message}` }));
      }, this.timing.reinsertDelayMs);
    });
    socket.destroy();
  }

  private handleFrame(payload: Uint8Array): Uint8Array | undefined {
    if (payload.length === 1) {
      switch (payload[0]) {
        case CTRL_GET_ATR:
          // Also what a 1-byte APDU 04 gets: both want exactly one reply, and only the ATR keeps pcscd right.
          return this.icc.atr();
        case CTRL_POWER_OFF:
        case CTRL_POWER_ON:
        case CTRL_RESET: {
          const value = payload[0];
          const timer = setTimeout(() => this.settleAmbiguous('apdu'), this.timing.ambiguousFrameMs);
          this.ambiguous = { value, timer };
          return undefined;
        }
        default:
          // 03 and 05..FF are no control code of vpcd's: a 1-byte APDU, answered by the card (6700).
          break;
      }
    }
    // vpcd never sends an empty frame (an empty APDU sends nothing); if one comes, it still gets an answer.
    return this.transmit(payload);
  }

  /** Decide what the pending 1-byte 00/01/02 frame was, and act on it. */
  private settleAmbiguous(as: 'control' | 'apdu'): void {
    const frame = this.ambiguous;
    if (!frame) return;
    clearTimeout(frame.timer);
    this.ambiguous = undefined;
    if (as === 'apdu') {
      const socket = this.socket;
      if (!socket) return;
      this.send(socket, this.transmit(Uint8Array.of(frame.value)));
      this.touch();
      return;
    }
    // Applied only now, so a 1-byte APDU 00 or 02 from some PC/SC client never powers off or resets the card.
    switch (frame.value) {
      case CTRL_POWER_OFF:
        this.icc.powerOff();
        this.emit({ type: 'power', on: false });
        break;
      case CTRL_POWER_ON:
        this.icc.powerOn();
        this.emit({ type: 'power', on: true });
        break;
      default:
        this.icc.reset();
        this.emit({ type: 'reset' });
    }
  }

  private transmit(payload: Uint8Array): Uint8Array {
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
    // A reply must be a response APDU: vpcd reads an empty one as the card gone and drops the connection.
    if (response.length < 2 || response.length > 0xffff) response = Uint8Array.of(0x6f, 0x00);
    this.emit({ type: 'apdu', command, response });
    return response;
  }

  private send(socket: net.Socket, payload: Uint8Array): void {
    const frame = Buffer.allocUnsafe(2 + payload.length);
    frame.writeUInt16BE(payload.length, 0);
    frame.set(payload, 2);
    socket.write(frame);
  }
}
