// Command chaining (ISO/IEC 7816-4, CLA bit 10) for readers without extended length: a command whose data
// exceed 255 bytes goes as 255-byte parts, each but the last acknowledged 9000, the last one carrying Le.

import { encodeCommand, MAX_SHORT_NC, MAX_SHORT_NE, parseCommand } from '../../sdk/apdu.js';
import { SW } from '../../sdk/spec.js';
import { swOf, type Transceive } from './channel.js';

const CHAINING_BIT = 0x10;

export interface ChainingOptions {
  /** The reader takes extended APDUs: nothing to split. */
  extended: boolean;
}

export function chaining(inner: Transceive, options: ChainingOptions): Transceive {
  if (options.extended) return inner;
  return async (apdu, ctx) => {
    const c = parseCommand(apdu);
    const ne = c.ne === undefined ? undefined : Math.min(c.ne, MAX_SHORT_NE);
    if (c.data.length <= MAX_SHORT_NC && !c.extended) return inner(apdu, ctx);
    const parts: Uint8Array[] = [];
    for (let o = 0; o < c.data.length; o += MAX_SHORT_NC) parts.push(c.data.subarray(o, o + MAX_SHORT_NC));
    const last = parts.pop() ?? new Uint8Array(0);
    for (const part of parts) {
      const r = await inner(encodeCommand({ cla: c.cla | CHAINING_BIT, ins: c.ins, p1: c.p1, p2: c.p2, data: part }), ctx);
      if (swOf(r) !== SW.SUCCESS) return r;
    }
    return inner(encodeCommand({ cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data: last, ne }), ctx);
  };
}
