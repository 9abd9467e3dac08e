// Which command APDUs carry key material, and how to blank it in APDU dumps and traces: the data field is
// replaced by zero bytes of the same length, so lengths, headers and the rest of the exchange stay readable.

/** Where a command's key material lies, and why it was blanked. */
export interface Redaction {
  /** Offset of the first blanked byte in the command APDU. */
  offset: number;
  /** Number of blanked bytes: the command's data field, whole. */
  length: number;
  /** The command's name, for the marker line. */
  command: string;
}

/**
 * Commands whose data is key material. PUT KEY (INS D8, every P1): public keys of the authority and the
 * checking terminal, the card's SM9 private keys from the key generation centre, the diversified checking
 * key K_card. Matched on INS alone, whatever the CLA (chaining bit or not, even a CLA the card refuses):
 * the bytes are in the dump either way. No other command of apdu-spec carries a private or symmetric key.
 */
const KEY_BEARING_INS = new Map<number, string>([[0xd8, 'PUT KEY']]);

/** The data field of `apdu` when it carries key material; undefined otherwise. */
export function keyMaterial(apdu: Uint8Array): Redaction | undefined {
  if (apdu.length < 5) return undefined;
  const command = KEY_BEARING_INS.get(apdu[1]!);
  if (!command) return undefined;
  // Short Lc at byte 4, or extended (00 Lc1 Lc2) at 4..6. Anything that does not parse as either has every
  // byte after the header blanked: better too much than a key left in a malformed command.
  const n = apdu.length - 4;
  if (apdu[4] !== 0) {
    const lc = apdu[4]!;
    if (n === 1 + lc || n === 2 + lc) return { offset: 5, length: lc, command };
  } else if (n >= 3) {
    const lc = (apdu[5]! << 8) | apdu[6]!;
    if (lc > 0 && (n === 3 + lc || n === 5 + lc)) return { offset: 7, length: lc, command };
  }
  return { offset: 4, length: n, command };
}

/** `apdu` with its key material zeroed (a copy), and where; the same bytes when there is none. */
export function redactKeyMaterial(apdu: Uint8Array): { apdu: Uint8Array; redaction?: Redaction } {
  const redaction = keyMaterial(apdu);
  if (!redaction) return { apdu };
  const copy = Uint8Array.from(apdu);
  copy.fill(0, redaction.offset, redaction.offset + redaction.length);
  return { apdu: copy, redaction };
}
