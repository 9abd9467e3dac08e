// 61XX and GET RESPONSE (ISO/IEC 7816-4): while the card says more data remain, fetch them and join the
// parts into one response. How many rounds a card may demand is the bounds decorator's business.

import { concat } from '../../sdk/bytes.js';
import { getResponseApdu, remainingOf } from '../../sdk/commands/get-response.js';
import { SW } from '../../sdk/spec.js';
import { swOf, type Transceive } from './channel.js';

export interface GetResponseOptions {
  /** Ask for up to 65536 bytes per round (extended Le) instead of the XX the card announced. */
  extended: boolean;
}

export function collectingResponses(inner: Transceive, options: GetResponseOptions): Transceive {
  return async (apdu, ctx) => {
    let response = await inner(apdu, ctx);
    if ((swOf(response) & 0xff00) !== SW.BYTES_REMAINING) return response;
    const parts: Uint8Array[] = [];
    while ((swOf(response) & 0xff00) === SW.BYTES_REMAINING) {
      parts.push(response.subarray(0, response.length - 2));
      response = await inner(getResponseApdu(options.extended ? 65536 : remainingOf(swOf(response))), ctx);
    }
    return concat(...parts, response);
  };
}
