// The card session's building block, apdu4j style: one function from a command APDU to a response APDU,
// and decorators that each add one behaviour to it (chaining, 6CXX, GET RESPONSE, bounds, tracing).

import type { Transport } from '../transport/transport.js';

/** One logical command being sent: its spec name and the budget all of its wire exchanges share. */
export interface CommandContext {
  /** Spec name of the command ("CLA 80 INS 99" for an APDU no spec command names). */
  readonly command: string;
  /** Monotonic time (performance.now, ms) the command started. */
  readonly started: number;
  /** Monotonic time after which no further exchange of this command is started. */
  readonly deadline: number;
  /** Wire exchanges so far, GET RESPONSE rounds among them, and response data bytes received. */
  exchanges: number;
  getResponseRounds: number;
  responseBytes: number;
  /** Monotonic time the command last let the event loop run (timers, I/O). */
  lastYield: number;
}

/** Send one command APDU (as bytes), get one response APDU (data ‖ SW1 SW2). */
export type Transceive = (apdu: Uint8Array, ctx: CommandContext) => Promise<Uint8Array>;

export function newCommandContext(command: string, deadlineMs: number): CommandContext {
  const now = performance.now();
  return { command, started: now, deadline: now + deadlineMs, exchanges: 0, getResponseRounds: 0, responseBytes: 0, lastYield: now };
}

/** The bottom of every stack: the transport's transmit. */
export function wire(transport: Transport): Transceive {
  return (apdu) => transport.transmit(apdu);
}

/** SW1 SW2 of a response APDU that has at least two bytes (the bounds decorator makes sure it has). */
export function swOf(response: Uint8Array): number {
  return (response[response.length - 2] << 8) | response[response.length - 1];
}
