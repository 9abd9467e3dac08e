// What a command handler may see of the card and the one way it changes NVM: the committed state (read only),
// the volatile RAM, and commit(next). Handlers and the applet meet here, so neither imports the other.

import type { CommandApdu } from '../../sdk/apdu.js';
import type { CardState, SymKeyEntry } from '../state.js';

/** A refusal with a spec status word; thrown inside handlers, turned into the response SW by the applet. */
export class CardRefusal extends Error {
  constructor(readonly sw: number, message = '') {
    super(message);
  }
}

export function refuse(sw: number, why = ''): never {
  throw new CardRefusal(sw, why);
}

/** Gate mode sym: the session a VERIFY P1=02/03 opened; the next WRITE USAGE / DELETE spends it. */
export interface SymSession {
  key: SymKeyEntry;
  cardChallenge: Uint8Array;
  macKey: Uint8Array;
  /** Last MAC of the session (the VERIFY answer's): the next command's MAC is chained on it. */
  chain: Uint8Array;
}

/** Volatile (RAM) state: lost on power off and reset, never written to NVM. */
export interface VolatileState {
  selected: boolean;
  /** Gate mode pki: the one-time challenge the next WRITE USAGE / DELETE must carry. */
  challenge: Uint8Array | null;
  session: SymSession | null;
  readCursor: { query: string; lastSeq: number } | null;
}

export interface CardContext {
  /** The committed persistent state. Immutable: a handler builds the next state and commits it. */
  readonly state: CardState;
  /** Volatile state; handlers set it directly (challenges, sessions, the READ cursor, selection). */
  readonly ram: VolatileState;
  /** Bytes of NVM the committed state uses (GET DATA capacity). */
  readonly usedBytes: number;
  /** The one way to change NVM: the whole next state, atomically, or NOT_ENOUGH_MEMORY (6A84) if it does not fit. */
  commit(next: CardState): void;
}

/** A command's handler: validate everything, then commit one new state or refuse; the answer's data out. */
export type CommandHandler = (ctx: CardContext, apdu: CommandApdu) => Uint8Array;
