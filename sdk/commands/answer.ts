// The one place where a card answer that does not decode becomes a typed error: a terminal that meets
// a malformed answer learns which command it was, and no decoding failure escapes as a bug.

import { CardMisbehavedError } from '../errors.js';
import { TlvError } from '../tlv.js';

/** Run `decode` on a card's answer to `command`; malformed data (TlvError) becomes CardMisbehavedError('answer'). */
export function decodeAnswer<T>(command: string, decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    if (e instanceof TlvError) throw new CardMisbehavedError(command, 'answer', e.message, undefined, { cause: e });
    throw e;
  }
}
