// Types of the conformance vector files (test-vectors/*.json; JSON Schema in schema/, prose in README.md).
// Shared by the generator that writes them and the runner that executes them against a card.

/** What a vector expects of the card, as in Wycheproof. */
export type Result = 'valid' | 'invalid' | 'acceptable';

/** A vector file: one suite and protocol area (test-vectors/README.md describes every field). */
export interface VectorFile {
  $schema?: string;
  /** What the file holds: always "eticket-apdu-vectors". */
  type: 'eticket-apdu-vectors';
  /** Crypto suite of every card and key in the file (apdu-spec suites: rsa, sm9). */
  suite: string;
  /** Protocol area: framing, personalisation, load, read-verify, usage-delete, sym-gate, threats, rotation. */
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

/** Tests that share one card fixture. */
export interface TestGroup {
  type: 'ApduTest';
  comment: string;
  fixture: Fixture;
  /** Ticket faces (TF_A) that steps name; the runner seals them at run time. */
  tickets: Record<string, TicketFaceJson>;
  tests: TestCase[];
}

/** The card a group needs: profile, state, capacity, and how tests run on it. */
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
  /**
   * Tickets keep the profile's operator (a sym key belongs to exactly one operator), so on a card that
   * lives across runs the runner makes their TIDs unique per run instead; steps name tickets, never TIDs.
   */
  operatorBound?: boolean;
  /**
   * Needs a card that never accepted a ticket issued later than this run's (its time high-water mark, apdu-spec
   * README 3.6, is below the run's issue times): a fresh image. A card in a reader skips the group.
   */
  freshCard?: boolean;
  /**
   * Steps `preset` set the card's state directly (a usage counter at its limit, a full ticket table): states that
   * thousands of APDUs would reach. Only an emulated image can be set so; a card in a reader skips the group.
   */
  presets?: boolean;
}

/** A ticket face by its apdu-spec field names. */
export type TicketFaceJson = Record<string, string | number>;

/** One vector: id, comment, flags, expected result and steps. */
export interface TestCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: Result;
  steps: Step[];
}

/** What a step expects: status word(s) and checks on the answer. */
export interface Expect {
  /** Status word(s) accepted: "9000", "6A80", or a pattern "61XX" / "6CXX". */
  sw: string[];
  /**
   * The answer's length (data, GET RESPONSE included) must equal that of every other step of the test carrying
   * the same name: found, not found and void answers look alike to a reader without keys.
   */
  sameLengthAs?: string;
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
      /** The ticket shown (status 'shown'); absent for a view that shows none. */
      ticket?: string;
      /** DF22: shown (default), not_found or void. */
      status?: 'shown' | 'not_found' | 'void';
      /** Terminal challenge the view must echo (hex), if the query carried one. */
      terminalChallenge?: string;
      cardChallenge: boolean;
      verificationCode: boolean;
      usage?: Record<string, string | number>;
    }
  | { kind: 'receipt'; ticket: string; event: number; counter: number; usage?: Record<string, string | number> }
  | { kind: 'load-result'; ticket: string }
  | { kind: 'public-key'; bits: number }
  | { kind: 'certificate'; usage: 'encryption' | 'signature' }
  /** SM9: the card's public key is its identity (from the serial) under the test KGC's master public key. */
  | { kind: 'identity-key'; usage: 'encryption' | 'signature' }
  /** SM9: GET DATA DB is the identity the policy derives from this card's serial. */
  | { kind: 'card-identity' }
  /** Gate mode sym: B4 names this card, ticket, event and counter, and its MAC chains on the command's MAC. */
  | { kind: 'mac-receipt'; ticket: string; event: number; counter: number; usage?: Record<string, string | number> }
  /** The answer equals the whole answer of the last `get-response` step (the card changed its NVM once, not twice). */
  | { kind: 'same-answer' };

/** A static APDU, or a template the runner fills in for the card at hand. */
export type Step =
  | { kind: 'apdu'; command: string; name: string | null; expect: Expect; comment?: string }
  | { kind: 'reset' }
  | { kind: 'certify'; expect: Expect }
  | {
      kind: 'load';
      ticket: string;
      mutation?: LoadMutation;
      reuse?: boolean;
      /** Short Le: Ne for the LOAD (a state-changing command answers 61XX, never 6CXX). */
      ne?: number;
      /** TF_V by a certified signing key of the profile, with its A4 (README 3.6), instead of the root. */
      signer?: CertifiedSigner;
      /** Issue time of the ticket relative to the one of another ticket of the test (rotation vectors). */
      issuedAfter?: { ticket: string; seconds: number };
      expect: Expect;
    }
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
      ne?: number;
      expect: Expect;
    }
  | { kind: 'fill'; until: 'load-refused' | 'usage-refused'; expect: Expect }
  /** GET RESPONSE for the rest of the previous answer (61XX); `check` applies to the whole answer. */
  | { kind: 'get-response'; expect: Expect }
  /**
   * EXTERNAL AUTHENTICATE: GET CHALLENGE, then the issuer's signature over it with the profile's authority key (or
   * the mutation's): afterwards GET DATA answers the identifying objects until SELECT or reset.
   */
  | { kind: 'authenticate'; mutation?: AuthMutation; expect: Expect }
  /** Set the card's state directly (fixture `presets`): a ticket's usage counter, or the ticket table filled with copies. */
  | { kind: 'preset'; what: 'usage-counter'; ticket: string; counter: number }
  | { kind: 'preset'; what: 'ticket-table'; count: number }
  | {
      /** Card keys that depend on the serial: SM9 identity (PUT DATA DB) and keys (PUT KEY 03/04), sym K_card (PUT KEY 05). */
      kind: 'install';
      what: 'identity' | 'encryption-key' | 'signing-key' | 'sym-key';
      /** sym-key: the master key of the profile to diversify. */
      masterKey?: string;
      /** For a serial that is not this card's. */
      otherCard?: boolean;
      expect: Expect;
    }
  | {
      /**
       * VERIFY by the ticket's TID with a fresh terminal challenge. pki: P1=00/01, the view opened with the
       * terminal key; sym: P1=02/03, B5 checked with K_card derived from the master key and the serial, and
       * the session kept for the next maced-command. On 9000 the runner checks TF_A, the challenges, TF_V, `usage`.
       */
      kind: 'verify';
      mode: 'pki' | 'sym';
      ticket: string;
      /** DF22 the view must carry (default shown). */
      status?: 'shown' | 'not_found' | 'void';
      /** P1 bit 2 (pki): the card's signing certificate in the view. */
      certificate?: boolean;
      /** Terminal (pki) or master key (sym) of the profile whose key id C1 names; another kind of key gives 6982. */
      key?: string;
      tfv?: boolean;
      /** Query this TID instead of the ticket's (a ticket the card never held). */
      tid?: string;
      usage?: Record<string, string | number>;
      expect: Expect;
    }
  | {
      /** Gate mode sym: WRITE USAGE / DELETE P1=01, B6 MAC'd under the session the last sym verify opened. */
      kind: 'maced-command';
      name: 'WRITE USAGE' | 'DELETE';
      ticket: string;
      event?: number;
      gate?: string;
      station?: string;
      time?: number;
      mutation?: MacMutation;
      ne?: number;
      expect: Expect;
    };

/** A signing key of the profile certified by one of its authorities (A4), the window relative to the ticket's issue time. */
export interface CertifiedSigner {
  /** The profile's signing key (keys/profile-<suite>.json `signingKeys`). */
  key: string;
  /** The authority of the profile that signs the certificate (default `authority`, the installed root). */
  root?: string;
  /** Window start and end, seconds relative to the ticket's issue time (default -3600 / +3600). */
  from?: number;
  until?: number;
  /** Operators the certificate names (default: the ticket's). */
  scopes?: string[];
  /** The certificate altered after signing (its DC one second later). */
  tamper?: boolean;
  /** A4 certifies another key than the one that signs (the profile's key of this name). */
  certifies?: string;
}

/** How a seal-ticket step alters the first ciphertext. */
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
  /**
   * The face's card binding (94): `other-card` names another serial (signed so: a ticket seen elsewhere sealed to
   * this card, 9102); `version-1` is an unbound version 1 face (6A80).
   */
  binding?: 'other-card' | 'version-1';
}

/** How an authenticate step (EXTERNAL AUTHENTICATE) alters the authorisation. */
export interface AuthMutation {
  /** Sign with this authority or certified key of the profile (a certificate spec for a signing key). */
  authority?: string;
  signer?: CertifiedSigner;
  /** Flip bit `n` of the signature. */
  flipSignatureBit?: number;
  /** Send without GET CHALLENGE first (the previous authentication spent the challenge). */
  noChallenge?: boolean;
  /** Truncate the data by one byte. */
  truncated?: boolean;
}

/** How a signed-command step alters the command. */
export interface CommandMutation {
  /**
   * The pending challenge with a bit flipped, zeros, the one the previous signed command of this test spent,
   * the card challenge RC of the open sym session, or GET CHALLENGE's (neither of which any pki command may use).
   */
  challenge?: 'flip-bit' | 'zero' | 'previous' | 'session' | 'issuer';
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
  /** DF21 other than the digest of the view the card showed (a substituted view: 9107). */
  viewDigest?: 'flip-bit';
  /** The command names this other ticket of the test (the card showed another one: 9107). */
  otherTicket?: string;
}

/** How a maced-command step alters the command or its MAC. */
export interface MacMutation {
  /**
   * C7 other than the session's RC: a bit flipped, the RC of the session before (its keys too), or the
   * pending pki challenge (no session: MAC under a zero key).
   */
  challenge?: 'flip-bit' | 'previous' | 'pki';
  /** Added to the ticket's current counter (-1: stale, +1: ahead). */
  counterDelta?: number;
  /** Flip bit `n` of the MAC. */
  flipMacBit?: number;
  /** Change the station after MACing. */
  alterAfterMac?: boolean;
  /** MAC with this command's INS and send as `name`. */
  macAs?: 'WRITE USAGE' | 'DELETE';
  /** MAC over a serial that is not this card's. */
  otherCardSerial?: boolean;
  /** MAC under session keys derived from this master key of the profile (same RT and RC). */
  macWith?: string;
  /** Field-level malformations (the MAC still covers the bytes sent). */
  fields?: 'swapped' | 'missing-event' | 'extra-event' | 'unknown-event' | 'trailing-byte' | 'truncated';
  /** The very bytes of the previous maced command of this test. */
  replay?: boolean;
  /** The previous maced command with C7 patched to the current session's RC, its MAC unchanged. */
  replayPatched?: boolean;
  /** The TID in the command is this one. */
  tid?: string;
  /** Send with this P1 (00: as if it were a pki command). */
  p1?: number;
  /** The command names this other ticket of the test (the session showed another one: 9107). */
  otherTicket?: string;
}
