// Tracing: every wire exchange reported with the name of the command it belongs to ("GET RESPONSE" for the
// fetches), its status word's spec name and its round-trip time; the session's byte counters read it too.

import { GET_RESPONSE } from '../../sdk/commands/get-response.js';
import { describeSw } from '../../sdk/spec.js';
import { swOf, type Transceive } from './channel.js';

/** One APDU exchange as the session saw it (for traces and the cost model). */
export interface TraceEntry {
  /** Spec name of the command ("GET RESPONSE" for the session's own fetches). */
  command: string;
  apdu: Uint8Array;
  response: Uint8Array;
  sw: number;
  swName: string;
  ms: number;
}

// A status word's spec name, looked up once per status word (describeSw formats it and scans the spec's list).
const SW_NAMES = new Map<number, string>();
function swName(sw: number): string {
  let name = SW_NAMES.get(sw);
  if (name === undefined) {
    name = describeSw(sw).name;
    if (SW_NAMES.size < 1024) SW_NAMES.set(sw, name);
  }
  return name;
}

/** Put it right above the wire: every APDU that was sent is traced, even one whose answer the bounds refuse. */
export function tracing(inner: Transceive, onExchange: (entry: TraceEntry) => void): Transceive {
  return async (apdu, ctx) => {
    const t0 = performance.now();
    const response = await inner(apdu, ctx);
    const ms = performance.now() - t0;
    const sw = response.length >= 2 ? swOf(response) : 0;
    const command = apdu[0] === GET_RESPONSE.claByte && apdu[1] === GET_RESPONSE.insByte ? GET_RESPONSE.name : ctx.command;
    onExchange({ command, apdu, response, sw, swName: swName(sw), ms });
    return response;
  };
}
