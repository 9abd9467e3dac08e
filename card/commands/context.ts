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
  /** Sequence number of the ticket the session's view showed (0: it showed none); a command for another gets 9107. */
  seq: number;
}

/** Gate mode pki: what the last VERIFY showed; the next WRITE USAGE / DELETE must answer exactly that (9107). */
export interface ShownView {
  /** C7 of the view: the command's challenge. */
  cardChallenge: Uint8Array;
  /** Sequence number of the ticket shown (0: the view showed none). */
  seq: number;
  /** SHA-256 of B2 as encoded: the command's DF21. */
  viewDigest: Uint8Array;
}

/** Volatile (RAM) state: lost on power off and reset, never written to NVM. */
export interface VolatileState {
  selected: boolean;
  /** GET CHALLENGE's one-time RC, which EXTERNAL AUTHENTICATE spends. */
  challenge: Uint8Array | null;
  /** Gate mode pki: the view the last VERIFY showed. */
  shown: ShownView | null;
  session: SymSession | null;
  /** EXTERNAL AUTHENTICATE succeeded since the last SELECT or reset: GET DATA answers the identifying objects. */
  issuerAuthenticated: boolean;
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
