// Bounds on what one command may cost, whatever the card answers: GET RESPONSE rounds, response bytes, a
// per-command deadline on a monotonic clock, and a yield to the event loop now and then (apdu-spec limits).

import { CardMisbehavedError, type Misbehaviour } from '../../sdk/errors.js';
import { LIMITS } from '../../sdk/spec.js';
import { GET_RESPONSE } from '../../sdk/commands/get-response.js';
import type { CommandContext, Transceive } from './channel.js';

export interface Bounds {
  /** GET RESPONSE exchanges one command may need (default: the spec's maxGetResponseRounds). */
  maxGetResponseRounds?: number;
  /** Response data bytes one command may collect, over all its exchanges (default: the spec's maxResponseData). */
  maxResponseData?: number;
  /** Reader name for the errors. */
  reader?: string;
}

/**
 * Let timers and I/O run at least this often during one command: an in-process card answers within the
 * same tick, so a card that keeps a command going (61XX forever) would otherwise starve the event loop.
 */
export const YIELD_EVERY_MS = 10;

const isGetResponse = (apdu: Uint8Array) => apdu.length >= 2 && apdu[0] === GET_RESPONSE.claByte && apdu[1] === GET_RESPONSE.insByte;

/**
 * Checked on every wire exchange: before sending, the deadline (a late last answer is still taken: the
 * card may have committed it) and the GET RESPONSE count; after, the response's shape and the byte total.
 * Exceeding any throws CardMisbehavedError naming the command and what was exceeded.
 */
export function bounded(inner: Transceive, bounds: Bounds = {}): Transceive {
  const maxRounds = bounds.maxGetResponseRounds ?? LIMITS.maxGetResponseRounds;
  const maxBytes = bounds.maxResponseData ?? LIMITS.maxResponseData;
  const fail = (ctx: CommandContext, what: Misbehaviour, detail: string) => new CardMisbehavedError(ctx.command, what, detail, bounds.reader);
  return async (apdu, ctx) => {
    let now = performance.now();
    if (now - ctx.lastYield >= YIELD_EVERY_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      ctx.lastYield = now = performance.now();
    }
    if (now > ctx.deadline) {
      throw fail(ctx, 'deadline', `still not answered after ${Math.round(now - ctx.started)} ms and ${ctx.exchanges} exchange(s) (deadline ${Math.round(ctx.deadline - ctx.started)} ms)`);
    }
    if (isGetResponse(apdu) && ++ctx.getResponseRounds > maxRounds) {
      throw fail(ctx, 'getResponseRounds', `more than ${maxRounds} GET RESPONSE rounds (${ctx.responseBytes} bytes so far)`);
    }
    ctx.exchanges++;
    const response = await inner(apdu, ctx);
    if (response.length < 2) throw fail(ctx, 'responseApdu', `a response of ${response.length} byte(s) has no status word`);
    ctx.responseBytes += response.length - 2;
    if (ctx.responseBytes > maxBytes) throw fail(ctx, 'responseBytes', `more than ${maxBytes} bytes of response data (${ctx.responseBytes})`);
    return response;
  };
}
