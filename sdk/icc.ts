// What a card looks like from its contacts: power, reset, ATR and one APDU in, one APDU out.
// The emulated applet (card/) and test cards implement it; the in-process transport (host/) and the vpcd bridge drive it.

/** An integrated circuit card as a reader sees it: ATR, APDU exchange, power off. The emulator, the vpcd bridge and test cards implement it. */
export interface Icc {
  /** Answer-to-reset bytes. Available at any moment (pcscd asks for it while polling). */
  atr(): Uint8Array;
  /** Contacts powered: volatile state starts fresh. */
  powerOn(): void;
  /** Contacts unpowered: volatile state (selected applet, challenges, sessions) is lost; NVM is kept. */
  powerOff(): void;
  /** Warm reset: same effect on volatile state as powerOff + powerOn. */
  reset(): void;
  /**
   * Process one command APDU and return one response APDU (data ‖ SW1 SW2).
   * Never throws: any byte string in gives a status word out.
   */
  transmit(command: Uint8Array): Uint8Array;
}
