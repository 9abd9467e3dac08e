// The bottom edge of the host: one tiny interface every reader implements (emulator, PC/SC, replay).
// Everything above it (GET RESPONSE, 6CXX retry, chaining, bounds, typed errors) is written once: host/channel/, host/session.ts.

/** Events a transport may report about the card in its reader. */
export type CardEvent = { type: 'inserted'; atr: Uint8Array } | { type: 'removed' };

/** What a transport says about its reader. */
export interface TransportInfo {
  /** Human-readable reader name, e.g. "emulator:card.img" or "Virtual PCD 00 00". */
  readonly reader: string;
  /** Whether the reader/card pair accepts extended-length APDUs (Lc/Le up to 65535). */
  readonly extendedLength: boolean;
  /** Largest response the reader can return in one transmit (bytes, incl. SW). */
  readonly maxResponse: number;
}

/** The bottom edge of the host: bytes to a card and back. Everything above (GET RESPONSE, chaining, typed errors) is CardSession's. */
export interface Transport {
  readonly info: TransportInfo;
  /** Power the card and return its ATR. Idempotent when already connected. */
  connect(): Promise<Uint8Array>;
  /** Send one command APDU, return one response APDU (data ‖ SW1 SW2). */
  transmit(command: Uint8Array): Promise<Uint8Array>;
  /** Warm reset: volatile card state is lost, NVM kept. Returns the new ATR. */
  reset(): Promise<Uint8Array>;
  /** Release the card (and the reader handle). */
  disconnect(): Promise<void>;
  /** Subscribe to card inserted/removed events; returns an unsubscribe function. */
  onCardEvent?(listener: (event: CardEvent) => void): () => void;
}
