// GET RESPONSE (ISO/IEC 7816-4): fetches the rest of an answer after 61XX. Host sessions and the vector
// runner build it here; the card answers it in its framing layer (card/applet.ts).

import { encodeCommand, MAX_SHORT_NE } from '../apdu.js';
import { command } from '../spec.js';

export const GET_RESPONSE = command('GET RESPONSE');

/** GET RESPONSE asking for `ne` bytes (short Le up to 256, extended beyond). */
export function getResponseApdu(ne: number): Uint8Array {
  return encodeCommand({ cla: GET_RESPONSE.claByte, ins: GET_RESPONSE.insByte, p1: 0, p2: 0, ne, extended: ne > MAX_SHORT_NE });
}

/** XX of 61XX as a length: 00 means 256 or more. */
export function remainingOf(sw: number): number {
  return sw & 0xff || MAX_SHORT_NE;
}
