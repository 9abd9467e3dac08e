// Types of the conformance vector files (test-vectors/*.json; JSON Schema in schema/, prose in README.md).
// Shared by the generator that writes them and the runner that executes them against a card.

export type Result = 'valid' | 'invalid' | 'acceptable';

export interface VectorFile {
  $schema?: string;
  /** What the file holds: always "eticket-apdu-vectors". */
  type: 'eticket-apdu-vectors';
  /** Crypto suite of every card and key in the file (apdu-spec suites: rsa, sm9). */
  suite: string;
  /** Protocol area: framing, personalisation, load, read-verify, usage-delete. */
  area: string;
  protocol: string;
  protocolVersion: number;
  generatorVersion: number;
  numberOfTests: number;
  header: string[];
  /** Every flag used in the file, with the kind of bug a failing vector points at. */
  notes: Record<string, { bugType: string; description: string }>;
  testGroups: TestGroup[];
}

export interface TestGroup {
  type: 'ApduTest';
  comment: string;
  fixture: Fixture;
  /** Ticket faces (TF_A) that steps name; the runner seals them at run time. */
  tickets: Record<string, TicketFaceJson>;
  tests: TestCase[];
}

export interface Fixture {
  /** Personalisation profile in keys/ (keys/profile-<suite>.json names it). */
  profile: string;
  /** Card state when the group starts: as manufactured, or personalised with the profile and locked. */
  state: 'blank' | 'personalized';
  /** NVM bytes of the card; only an emulated card can be made to order (a reader's card is what it is). */
  capacity?: number;
  /** The group leaves the card unusable for the profile (e.g. its key table filled with other keys). */
  disposable?: boolean;
  /** Tests depend on earlier tests of the group: all run, in order, whatever the filter selects. */
  sequential?: boolean;
  /** Before every test: warm reset, then SELECT (P2=0C) when "reset-select". */
  beforeEach: 'reset' | 'reset-select';
}

export type TicketFaceJson = Record<string, string | number>;

export interface TestCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: Result;
  steps: Step[];
}

export interface Expect {
  /** Status word(s) accepted: "9000", "6A80", or a pattern "61XX" / "6CXX". */
  sw: string[];
  /** Exact response data (hex), compared under `mask` when given. */
  data?: string;
  /** Hex mask as long as `data`: only bits set here are compared (card-specific bytes masked out). */
  mask?: string;
  /** Response data length, when its value is card-specific. */
  length?: number;
  check?: Check;
}

/** Checks the runner makes with the test keys, for answers that differ from card to card. */
export type Check =
  | {
      kind: 'ticket-view';
      terminal: string;
      ticket: string;
      /** Terminal challenge the view must echo (hex), if the query carried one. */
      terminalChallenge?: string;
      cardChallenge: boolean;
      verificationCode: boolean;
      usage?: Record<string, string | number>;
    }
  | { kind: 'receipt'; ticket: string; event: number; counter: number; usage?: Record<string, string | number> }
  | { kind: 'load-result'; ticket: string }
  | { kind: 'public-key'; bits: number }
  | { kind: 'certificate'; usage: 'encryption' | 'signature' };

/** A static APDU, or a template the runner fills in for the card at hand. */
export type Step =
  | { kind: 'apdu'; command: string; name: string | null; expect: Expect; comment?: string }
  | { kind: 'reset' }
  | { kind: 'certify'; expect: Expect }
  | { kind: 'load'; ticket: string; mutation?: LoadMutation; reuse?: boolean; expect: Expect }
  | {
      kind: 'signed-command';
      name: 'WRITE USAGE' | 'DELETE';
      ticket: string;
      event?: number;
      gate?: string;
      station?: string;
      time?: number;
      terminal?: string;
      mutation?: CommandMutation;
      expect: Expect;
    }
  | { kind: 'fill'; until: 'load-refused' | 'usage-refused'; expect: Expect };

export interface LoadMutation {
  /** Flip bit `bit` (0 = MSB of the first byte) of one envelope field's value after sealing. */
  flip?: { field: 'encapsulation' | 'iv' | 'ciphertext' | 'mac' | 'tfv-signature'; bit: number };
  /** Envelope addressed to a serial that is not this card's. */
  recipient?: 'other-card';
  /** TF_V signed with this authority of the profile instead of the installed one. */
  authority?: string;
  /** TF_V names another suite id. */
  tfvSuite?: number;
  /** TF_A changed after it was signed (this field set to this value). */
  alterFace?: Record<string, string | number>;
  /** Well-sealed, malformed plaintext. */
  payload?: 'face-only' | 'tfv-first' | 'trailing-byte' | 'bad-padding';
  /** Malformed envelope. */
  envelope?: 'truncated' | 'trailing-byte' | 'fields-swapped' | 'version-2' | 'suite-other';
}

export interface CommandMutation {
  /** The pending challenge with a bit flipped, zeros, or the one the previous signed command of this test spent. */
  challenge?: 'flip-bit' | 'zero' | 'previous';
  /** Added to the ticket's current counter (-1: stale, +1: ahead). */
  counterDelta?: number;
  /** Flip bit `n` of the signature after signing. */
  flipSignatureBit?: number;
  /** Change the station after signing. */
  alterAfterSigning?: boolean;
  /** Sign for this INS (the other command) and send as `name`. */
  signAs?: 'WRITE USAGE' | 'DELETE';
  /** Sign with a serial that is not this card's. */
  otherCardSerial?: boolean;
  /** Name this terminal's key id but sign with another terminal's key. */
  signWith?: string;
  /** Field-level malformations (the signature still covers the bytes sent). */
  fields?: 'swapped' | 'missing-event' | 'extra-event' | 'unknown-event' | 'trailing-byte' | 'truncated';
  /** Send the very bytes of the previous signed command of this test again. */
  replay?: boolean;
  /** The TID in the command is this one (a ticket the card never held). */
  tid?: string;
}
