// The decorators stacked in the order a card session needs them, outermost first: 6CXX retry, GET RESPONSE,
// chaining, bounds, tracing, the transport. The session and the vector runner build theirs here.

import type { Transport } from '../transport/transport.js';
import { bounded, type Bounds } from './bounds.js';
import { chaining } from './chaining.js';
import { wire, type Transceive } from './channel.js';
import { collectingResponses } from './get-response.js';
import { tracing, type TraceEntry } from './tracing.js';
import { retryingWrongLe } from './wrong-le.js';

export interface StackOptions extends Bounds {
  /** Chain long commands (no extended length) or send them whole; GET RESPONSE asks for 65536 bytes when extended. */
  extended: boolean;
  onExchange?: (entry: TraceEntry) => void;
  /** Split long commands into chained parts on a short-length reader (default true; raw bytes go as given). */
  chain?: boolean;
  /** Collect 61XX with GET RESPONSE (default true). */
  collect?: boolean;
  /** Retry 6CXX once with the exact Le (default true). */
  retryWrongLe?: boolean;
  /** GET RESPONSE asks for what the card announced (XX), even on an extended reader. */
  shortGetResponse?: boolean;
}

export function channelStack(transport: Transport, o: StackOptions): Transceive {
  let t = wire(transport);
  if (o.onExchange) t = tracing(t, o.onExchange);
  t = bounded(t, { ...o, reader: o.reader ?? transport.info.reader });
  // Below GET RESPONSE and the 6CXX retry: a retried command is chained again as a whole.
  if (o.chain !== false) t = chaining(t, { extended: o.extended });
  if (o.collect !== false) t = collectingResponses(t, { extended: o.extended && !o.shortGetResponse });
  if (o.retryWrongLe !== false) t = retryingWrongLe(t);
  return t;
}
