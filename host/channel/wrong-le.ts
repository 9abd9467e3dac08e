// 6CXX (ISO/IEC 7816-4): the card says Le was wrong and names the exact length; send the same command
// once more with Le = XX. Once only: a card that answers 6CXX again gets its status word back.

import { encodeCommand, parseCommand } from '../../sdk/apdu.js';
import { SW } from '../../sdk/spec.js';
import { swOf, type Transceive } from './channel.js';

export function retryingWrongLe(inner: Transceive): Transceive {
  return async (apdu, ctx) => {
    const response = await inner(apdu, ctx);
    const sw = swOf(response);
    if ((sw & 0xff00) !== SW.WRONG_LE_EXACT) return response;
    const c = parseCommand(apdu);
    return inner(encodeCommand({ ...c, ne: sw & 0xff || 256, extended: false }), ctx);
  };
}
