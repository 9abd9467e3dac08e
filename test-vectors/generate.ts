// Generates the committed conformance vectors (test-vectors/<suite>-<area>.json) from apdu-spec and the
// TEST ONLY keys. Deterministic: no clock, no randomness; run it twice and the files are byte-identical.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeCommand } from '../sdk/apdu.js';
import { concat, hex, u32, utf8 } from '../sdk/bytes.js';
import { AID, commandForIns, LIMITS, protocol, SUITE, T, USAGE_EVENT as EV, USAGE_STATE as ST } from '../sdk/spec.js';
import { tlv } from '../sdk/tlv.js';
import { encodeDiversifiedKey, encodeKeyGrant } from '../sdk/commands/put-key.js';
import { encodeReadQuery } from '../sdk/commands/read.js';
import { encodeVerifyQuery } from '../sdk/commands/verify.js';
import { keyId } from '../sdk/crypto/suite.js';
import { sm9EncryptionPublicKey, sm9SigningPublicKey } from '../sdk/crypto/sm9-suite.js';
import { cardIdentity } from '../sdk/roles/kgc.js';
import type { CertifiedSigner, Check, Expect, Fixture, Step, TestCase, TestGroup, TicketFaceJson, VectorFile } from './format.js';
import { loadTestKeys, type TestKeys } from './testkeys.js';

export const GENERATOR_VERSION = 2;
const OUT_DIR = fileURLToPath(new URL('./', import.meta.url));

/** Flag → the kind of bug a failing vector with it points at (Wycheproof "notes"). */
export const NOTES: Record<string, { bugType: string; description: string }> = {
  Functional: { bugType: 'FUNCTIONALITY', description: 'A well-formed command the card must accept and answer as apdu-spec says.' },
  Select: { bugType: 'FUNCTIONALITY', description: 'Application selection and its FCI (ISO/IEC 7816-4 SELECT by AID).' },
  GetData: { bugType: 'FUNCTIONALITY', description: 'GET DATA objects: values, lengths and the absent-object answer.' },
  NotSelected: { bugType: 'MISSING_STEP', description: 'A command that needs the e-ticket application selected, sent before SELECT (6986).' },
  Lifecycle: { bugType: 'WRONG_STATE', description: 'A command in the wrong life cycle state: personalisation after LOCK, ticket commands before it (6985).' },
  MalformedLength: { bugType: 'MALFORMED_APDU', description: 'Lc / Le inconsistent with the APDU or with the command case (6700).' },
  WrongCla: { bugType: 'MALFORMED_APDU', description: 'Class byte not supported, a logical channel, or secure messaging (6E00, 6881, 6882).' },
  WrongIns: { bugType: 'MALFORMED_APDU', description: 'Instruction not defined in this class (6D00).' },
  WrongP1P2: { bugType: 'MALFORMED_APDU', description: 'P1 or P2 outside the values apdu-spec lists for the command (6A86).' },
  ResponseChaining: { bugType: 'FRAMING', description: 'A response longer than Ne: 61XX and GET RESPONSE, pending data discarded by the next command.' },
  WrongLe: { bugType: 'FRAMING', description: 'Short Le below the response length: 6CXX with the exact length.' },
  Chaining: { bugType: 'FRAMING', description: 'ISO command chaining (CLA bit 10) used as apdu-spec allows.' },
  ChainingAbuse: { bugType: 'FRAMING', description: 'Chaining on a command that takes none, a chain over the buffer, Le in a chained part, or an interrupted chain.' },
  ExtendedLength: { bugType: 'FRAMING', description: 'Extended Lc / Le (the ATR announces them).' },
  ExtendedLengthAbuse: { bugType: 'MALFORMED_APDU', description: 'Extended length fields truncated, zero or longer than the card buffer.' },
  TruncatedTlv: { bugType: 'MALFORMED_DATA', description: 'Command data whose TLV encoding ends early (6A80).' },
  MalformedTlv: { bugType: 'MALFORMED_DATA', description: 'Duplicate, unknown, out-of-order or wrong-length TLV fields, trailing bytes (6A80).' },
  KeyManagement: { bugType: 'KEY_MANAGEMENT', description: 'PUT KEY / PUT DATA / GENERATE KEY checks: key id binding, duplicates, table limits.' },
  TamperedMac: { bugType: 'INTEGRITY', description: 'A sealed ticket whose MAC, IV, ciphertext or key encapsulation was changed (6988).' },
  PaddingOracle: { bugType: 'INTEGRITY', description: 'Valid MAC, invalid padding: must answer exactly as a bad MAC (6988).' },
  MalformedEnvelope: { bugType: 'MALFORMED_DATA', description: 'Sealed envelope B1 truncated, reordered, of another version or suite (6A80).' },
  MalformedPayload: { bugType: 'MALFORMED_DATA', description: 'A well-sealed first ciphertext whose plaintext is not TF_A then TF_V (6A80).' },
  OtherCard: { bugType: 'WRONG_RECIPIENT', description: "Another card's ticket or command: sealed to or signed for another serial (9102, 9106)." },
  UnknownAuthority: { bugType: 'AUTHORIZATION', description: 'TF_V signed by an authority key the card does not hold (6A88).' },
  ForgedTfv: { bugType: 'SIGNATURE', description: 'TF_V that does not verify: flipped bit, another suite, TF_A altered after signing (9101).' },
  Duplicate: { bugType: 'STATE', description: 'The same operator and TID loaded twice, or a key installed twice (6A89).' },
  Replay: { bugType: 'REPLAY', description: 'A LOAD after DELETE (9103), or a recorded WRITE USAGE / DELETE sent again (6984).' },
  WrongChallenge: { bugType: 'REPLAY', description: "A command naming another card challenge than the view's or session's, or with none pending (6984)." },
  StaleCounter: { bugType: 'REPLAY', description: 'A signed command with a stale or future ticket counter (9104).' },
  TamperedSignature: { bugType: 'SIGNATURE', description: "A terminal command whose signature or signed fields were changed, or signed by another key (9106)." },
  CrossCommand: { bugType: 'SIGNATURE', description: 'A command signed as DELETE sent as WRITE USAGE, or the reverse (9106).' },
  UnknownTerminal: { bugType: 'AUTHORIZATION', description: 'A terminal key id the card does not hold (6982).' },
  UnauthorisedTerminal: { bugType: 'AUTHORIZATION', description: "An installed terminal key not scoped to the ticket's operator (6982, or it sees no ticket)." },
  NotFound: { bugType: 'FUNCTIONALITY', description: 'No such ticket: 9000 and a view of the fixed length whose status DF22 says 01 (no match); a command naming a ticket no view showed is 9107.' },
  VoidTicket: { bugType: 'STATE', description: 'A deleted (void) ticket named again: 9000 and a view whose DF22 says 02 (void); a command on it is 9107.' },
  UsageState: { bugType: 'STATE', description: 'The usage state machine: events allowed and refused in each state (6985).' },
  CardFull: { bugType: 'RESOURCE', description: 'NVM full: LOAD and WRITE USAGE answer 6A84; DELETE still works.' },
  ReadCursor: { bugType: 'STATE', description: 'READ first / next (patent 621-622): the cursor and its end (a view with DF22 01; 6985 for next without first).' },
  SymGate: { bugType: 'FUNCTIONALITY', description: 'Gate mode sym (apdu-spec README 3.5): diversified key, VERIFY P1=02/03 session view, MAC-chained command and receipt.' },
  SessionMac: { bugType: 'INTEGRITY', description: "Gate mode sym: a command whose session MAC, MAC'd fields, INS, card serial or session key is wrong (9106)." },
  SessionLifetime: { bugType: 'REPLAY', description: 'Gate mode sym: a command with no session, or after SELECT, reset, GET CHALLENGE, another VERIFY or an earlier command ended it (6984).' },
  CrossMode: { bugType: 'REPLAY', description: "Pki views and sym sessions never satisfy each other's commands, nor does GET CHALLENGE's challenge; key ids of one mode are unknown to the other (6984, 6982, 6A80)." },
  IssuerAuth: { bugType: 'AUTHORIZATION', description: 'EXTERNAL AUTHENTICATE: the issuer signs GET CHALLENGE with an authority key the card holds, or one it certified; each refusal in order (6A80, 6984, 6A88, 9101, 9106).' },
  RELAY: { bugType: 'RELAY', description: 'A device between gate and card substituted the view: a WRITE USAGE / DELETE whose DF21 or TID does not answer the view (pki) or session (sym) the card showed is refused (9107) and nothing is written.' },
  CLONE: { bugType: 'CLONE', description: 'A ticket seen elsewhere sealed to this card: a face bound (94) to another card is refused (9102), an unbound version 1 face too (6A80).' },
  SHORT_LE: { bugType: 'FRAMING', description: 'A state-changing command (LOAD, WRITE USAGE, DELETE, GENERATE KEY) with a short Le: never 6CXX, but what fits with 61XX and the rest by GET RESPONSE; the state changed once.' },
  KEYLESS: { bugType: 'PRIVACY', description: 'What a reader without keys learns: found, not found and void answers of one length (9000), no serial in the FCI or in sym answers, GET DATA of identifying objects refused before EXTERNAL AUTHENTICATE (6982), commands refused before any lookup (6984).' },
  ROTATION: { bugType: 'KEY_MANAGEMENT', description: 'TF_V (or an issuer authorisation) by a signing key certified by a root the card holds (A4): accepted in its window; refused when retired, outside its window, certified by an unknown root, for another key or operator, or tampered (6A88, 9101).' },
  LIMITS: { bugType: 'RESOURCE', description: 'A usage counter at limits.maxUsageEvents (WRITE USAGE 6985, DELETE still works) and a ticket table at limits.maxTickets (LOAD 6A84, no hang), set directly on an emulated image.' },
};

// ---- builders ---------------------------------------------------------------------------------------

const sw = (...s: string[]) => s;

function expect(s: string[], extra: Omit<Expect, 'sw'> = {}): Expect {
  return { sw: s, ...extra };
}

/** EXTERNAL AUTHENTICATE with the profile's authority (the runner signs the card's challenge). */
const AUTHENTICATE: Step = { kind: 'authenticate', expect: { sw: ['9000'] } };

/** A static APDU step; `name` is the spec command the APDU's CLA/INS select (null when none does). */
function apdu(command: string | Uint8Array, e: Expect, comment?: string): Step {
  const bytes = typeof command === 'string' ? Uint8Array.from(Buffer.from(command.replace(/\s+/g, ''), 'hex')) : command;
  const def = bytes.length >= 2 ? commandForIns(bytes[0], bytes[1]) : undefined;
  return { kind: 'apdu', command: hex(bytes), name: def?.name ?? null, expect: e, ...(comment ? { comment } : {}) };
}

function cmd(cla: number, ins: number, p1: number, p2: number, data?: Uint8Array, ne?: number, extended = false): Uint8Array {
  return encodeCommand({ cla, ins, p1, p2, data, ne, extended });
}

/** A long command as short APDUs with ISO chaining: every part but the last answered 9000. */
function chained(cla: number, ins: number, p1: number, p2: number, data: Uint8Array, last: Expect, ne?: number): Step[] {
  const parts: Uint8Array[] = [];
  for (let o = 0; o < data.length; o += 255) parts.push(data.subarray(o, o + 255));
  const tail = parts.pop()!;
  return [...parts.map((p) => apdu(cmd(cla | 0x10, ins, p1, p2, p), expect(sw('9000')))), apdu(cmd(cla, ins, p1, p2, tail, ne), last)];
}

const SELECT = cmd(0x00, 0xa4, 0x04, 0x00, AID, 256);
const SELECT_NO_FCI = cmd(0x00, 0xa4, 0x04, 0x0c, AID);
const getData = (tag: number, ne = 256) => cmd(0x80, 0xca, 0x00, tag, undefined, ne);

class FileBuilder {
  private tcId = 0;
  readonly groups: TestGroup[] = [];
  private current?: TestGroup;

  constructor(readonly area: string, readonly keys: TestKeys) {}

  group(comment: string, fixture: Partial<Fixture> = {}): this {
    this.current = {
      type: 'ApduTest',
      comment,
      fixture: { profile: this.keys.profileName, state: 'personalized', beforeEach: 'reset-select', ...fixture },
      tickets: {},
      tests: [],
    };
    this.groups.push(this.current);
    return this;
  }

  /** A ticket face for this group; TIDs are unique per file so that groups never collide on a reused card. */
  ticket(ref: string, over: TicketFaceJson = {}): string {
    this.current!.tickets[ref] = {
      // Version 2: the runner binds the face to the card under test (94) when it signs it.
      version: 2,
      operator: this.keys.operator,
      tid: `${this.area.toUpperCase().slice(0, 4)}-${ref}`,
      serviceDate: 20260301,
      train: 'G1',
      origin: 'BJS',
      destination: 'SHH',
      departure: 480,
      seat: '01A',
      validFrom: 1772323200,
      validUntil: 1772424000,
      issuedAt: 1767225600 + Object.keys(this.current!.tickets).length,
      ...over,
    };
    return ref;
  }

  tid(ref: string): string {
    return String(this.current!.tickets[ref].tid);
  }

  test(comment: string, flags: string[], result: TestCase['result'], steps: Step[]): this {
    this.current!.tests.push({ tcId: ++this.tcId, comment, flags, result, steps });
    return this;
  }

  get nextTcId(): number {
    return this.tcId + 1;
  }

  file(header: string[]): VectorFile {
    const used = new Set(this.groups.flatMap((g) => g.tests.flatMap((t) => t.flags)));
    return {
      $schema: './schema/eticket-apdu-vectors.schema.json',
      type: 'eticket-apdu-vectors',
      suite: this.keys.suite,
      area: this.area,
      protocol: protocol.protocol,
      protocolVersion: protocol.version,
      generatorVersion: GENERATOR_VERSION,
      numberOfTests: this.groups.reduce((n, g) => n + g.tests.length, 0),
      header,
      notes: Object.fromEntries(Object.entries(NOTES).filter(([f]) => used.has(f))),
      testGroups: this.groups,
    };
  }
}

// ---- ticket-command helpers -------------------------------------------------------------------------

function keyIdOf(k: TestKeys, name: string): Uint8Array {
  return k.terminals.get(name)!.keys.keyId;
}

/** A deterministic 16-byte terminal challenge per test, so a replayed view would be caught. */
function challengeFor(n: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (n * 31 + i * 7) & 0xff);
}

function readQuery(k: TestKeys, q: { terminal?: string; challenge?: Uint8Array; date?: number; train?: string }): Uint8Array {
  return encodeReadQuery({ keyId: keyIdOf(k, q.terminal ?? 'terminal'), terminalChallenge: q.challenge, date: q.date, train: q.train });
}

function verifyQuery(k: TestKeys, q: { terminal?: string; challenge: Uint8Array } & ({ tid: string } | { date: number; train?: string; station?: string })): Uint8Array {
  const criteria = 'tid' in q ? { tid: q.tid } : { date: q.date, train: q.train, station: q.station };
  return encodeVerifyQuery({ keyId: keyIdOf(k, q.terminal ?? 'terminal'), terminalChallenge: q.challenge, criteria });
}

const READ = (p1: number, data: Uint8Array, e: Expect) => apdu(cmd(0x80, 0x52, p1, 0x00, data, 256), e);
const VERIFY = (p1: number, data: Uint8Array, e: Expect) => apdu(cmd(0x80, 0x54, p1, 0x00, data, 256), e);

function viewCheck(ticket: string | undefined, challenge: Uint8Array | undefined, o: { terminal?: string; card?: boolean; tfv?: boolean; usage?: Record<string, number | string>; status?: 'not_found' | 'void' } = {}): Check {
  return {
    kind: 'ticket-view',
    terminal: o.terminal ?? 'terminal',
    ...(ticket ? { ticket } : {}),
    ...(o.status ? { status: o.status } : {}),
    ...(challenge ? { terminalChallenge: hex(challenge) } : {}),
    cardChallenge: o.card ?? false,
    verificationCode: o.tfv ?? false,
    ...(o.usage ? { usage: o.usage } : {}),
  };
}

const load = (ticket: string, s = '9000', extra: Partial<Extract<Step, { kind: 'load' }>> = {}): Step => ({
  kind: 'load',
  ticket,
  ...extra,
  expect: expect(sw(s), s === '9000' ? { check: { kind: 'load-result', ticket } } : {}),
});

/** VERIFY by TID (the checking terminal's first step before a signed command): shows the view a command must answer. */
function verifyTid(b: FileBuilder, ticket: string, o: { usage?: Record<string, number | string>; tfv?: boolean; status?: 'not_found' | 'void'; sameLengthAs?: string } = {}): Step {
  const ch = challengeFor(b.nextTcId);
  return VERIFY(
    o.tfv ? 1 : 0,
    verifyQuery(b.keys, { challenge: ch, tid: b.tid(ticket) }),
    expect(sw('9000'), { check: viewCheck(o.status ? undefined : ticket, ch, { card: true, tfv: o.tfv, usage: o.usage, status: o.status }), ...(o.sameLengthAs ? { sameLengthAs: o.sameLengthAs } : {}) }),
  );
}

type SignedStep = Extract<Step, { kind: 'signed-command' }>;

function use(ticket: string, event: number, s: string, extra: Partial<SignedStep> = {}, receipt?: { counter: number; usage?: Record<string, number | string> }): Step {
  return {
    kind: 'signed-command',
    name: 'WRITE USAGE',
    ticket,
    event,
    gate: 'VG01',
    station: 'BJS',
    time: 1772330000,
    ...extra,
    expect: expect(sw(s), receipt ? { check: { kind: 'receipt', ticket, event, counter: receipt.counter, ...(receipt.usage ? { usage: receipt.usage } : {}) } } : {}),
  };
}

function del(ticket: string, s: string, extra: Partial<SignedStep> = {}, receiptCounter?: number): Step {
  return {
    kind: 'signed-command',
    name: 'DELETE',
    ticket,
    gate: 'VG01',
    station: 'BJS',
    time: 1772330000,
    ...extra,
    expect: expect(sw(s), receiptCounter !== undefined ? { check: { kind: 'receipt', ticket, event: EV.DELETED, counter: receiptCounter } } : {}),
  };
}

const GET_CHALLENGE = apdu(cmd(0x00, 0x84, 0x00, 0x00, undefined, 8), expect(sw('9000'), { length: 8 }));

// ---- the areas ----------------------------------------------------------------------------------------

function installedKeysHex(k: TestKeys): string {
  return (
    [...k.authorities.values()].filter((a) => a.installed).map((a) => '01' + hex(a.keyId)).join('') +
    [...k.terminals.values()].filter((t) => t.installed).map((t) => '02' + hex(t.keys.keyId)).join('') +
    [...k.masterKeys.values()].filter((m) => m.installed).map((m) => '03' + hex(m.keyId)).join('')
  );
}

const suiteHex = (k: TestKeys) => hex(Uint8Array.of(SUITE[k.suite]));

/** The FCI, exactly: nothing in it is card-specific (protocol version 2 dropped the serial). */
function fciHex(lifecycle: number, k: TestKeys): { data: string } {
  const fci = tlv(0x6f, concat(tlv(T.DF_NAME, AID), tlv(T.FCI_PROPRIETARY, concat(tlv(T.SUITE, Uint8Array.of(SUITE[k.suite])), tlv(T.LIFECYCLE, Uint8Array.of(lifecycle)), tlv(T.PROTOCOL_VERSION, Uint8Array.of(protocol.version))))));
  return { data: hex(fci) };
}

const VERSION_HEX = hex(Uint8Array.of(protocol.version));

/** Commands with their fixed headers, for the table-driven negative classes (wrong P1-P2, not selected...). */
interface CommandCase {
  name: string;
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data a well-formed APDU of this case carries (content irrelevant to the vector). */
  data?: Uint8Array;
  ne?: number;
}

function commandCases(): CommandCase[] {
  const dummy = Uint8Array.of(0xb1, 0x00);
  const byName: Record<string, Partial<CommandCase>> = {
    SELECT: { data: AID, ne: 256 },
    'GET RESPONSE': { ne: 256 },
    'GET CHALLENGE': { ne: 8 },
    'EXTERNAL AUTHENTICATE': { data: dummy },
    'GET DATA': { ne: 256 },
    'GENERATE KEY': { ne: 256 },
    'PUT KEY': { data: dummy },
    'PUT DATA': { data: dummy },
    LOCK: {},
    LOAD: { data: dummy, ne: 256 },
    READ: { data: dummy, ne: 256 },
    VERIFY: { data: dummy, ne: 256 },
    'WRITE USAGE': { data: dummy, ne: 256 },
    DELETE: { data: dummy, ne: 256 },
  };
  return protocol.commands
    .filter((c) => byName[c.name])
    .map((c) => ({
      name: c.name,
      cla: parseInt(c.cla, 16),
      ins: parseInt(c.ins, 16),
      p1: parseInt(c.p1[0], 16),
      p2: parseInt(c.p2.includes('D1') ? 'D1' : c.p2[0], 16),
      ...byName[c.name],
    })) as CommandCase[];
}

function framing(k: TestKeys): VectorFile {
  const b = new FileBuilder('framing', k);
  const cases = commandCases();

  b.group('Before SELECT: selection, FCI, and every command that needs the application selected', { beforeEach: 'reset' });
  const fci = fciHex(7, k);
  b.test('SELECT by AID with FCI (P2=00): AID, suite, life cycle, version, and no serial', ['Select', 'Functional', 'KEYLESS'], 'valid', [apdu(SELECT, expect(sw('9000'), fci))]);
  b.test('SELECT by AID without FCI (P2=0C)', ['Select', 'Functional'], 'valid', [apdu(SELECT_NO_FCI, expect(sw('9000'), { length: 0 }))]);
  b.test('SELECT of an AID the card does not hold', ['Select'], 'invalid', [apdu(cmd(0x00, 0xa4, 0x04, 0x00, Uint8Array.of(0xa0, 0, 0, 0, 0x03, 0x10, 0x10), 256), expect(sw('6A82')))]);
  b.test('SELECT with a truncated AID', ['Select'], 'invalid', [apdu(cmd(0x00, 0xa4, 0x04, 0x00, AID.subarray(0, 8), 256), expect(sw('6A82')))]);
  b.test('A failed SELECT leaves the application selected', ['Select'], 'valid', [
    apdu(SELECT_NO_FCI, expect(sw('9000'))),
    apdu(cmd(0x00, 0xa4, 0x04, 0x00, Uint8Array.of(0xa0, 0, 0, 0, 0x03, 0x10, 0x10), 256), expect(sw('6A82'))),
    apdu(getData(T.PROTOCOL_VERSION), expect(sw('9000'), { data: VERSION_HEX })),
  ]);
  for (const c of cases.filter((c) => protocol.commands.find((p) => p.name === c.name)!.requiresSelection)) {
    b.test(`${c.name} before SELECT`, ['NotSelected'], 'invalid', [apdu(cmd(c.cla, c.ins, c.p1, c.p2, c.data, c.ne), expect(sw('6986')))]);
  }
  b.test('GET RESPONSE with no response pending', ['ResponseChaining'], 'invalid', [apdu('00C0000000', expect(sw('6985')))]);
  b.test('Power cycle (reset) deselects the application', ['NotSelected'], 'invalid', [
    apdu(SELECT_NO_FCI, expect(sw('9000'))),
    { kind: 'reset' },
    apdu(getData(T.SUITE), expect(sw('6986'))),
  ]);

  b.group('After SELECT: GET DATA, response chaining, Le, malformed APDUs, CLA / INS / P1-P2, chaining and extended length');
  const rsa = k.suite === 'rsa';
  // The longest static answer drives the response-chaining vectors: the RSA encryption SPKI (over 256
  // bytes, so short Le=00 gives 61XX), or the SM9 signing key (under 256: extended Le below it does).
  const bigTag = rsa ? T.CARD_ENCRYPTION_PUBLIC_KEY : T.CARD_SIGNING_PUBLIC_KEY;
  const bigName = rsa ? 'D3' : 'D4';
  const bigLen = rsa ? k.authorities.get('authority')!.key.publicKey.length : sm9SigningPublicKey(cardIdentity(new Uint8Array(8)), k.kgc!.signMasterPublicKey).length;
  const chunk = rsa ? 256 : 100;
  const firstPart = rsa ? getData(bigTag) : cmd(0x80, 0xca, 0x00, bigTag, undefined, chunk, true);
  const firstHow = rsa ? 'Le=00' : `extended Le=${chunk}`;
  b.test('GET DATA DA protocol version', ['GetData', 'Functional'], 'valid', [apdu(getData(T.PROTOCOL_VERSION), expect(sw('9000'), { data: VERSION_HEX }))]);
  b.test(`GET DATA D1 suite (${k.suite})`, ['GetData', 'Functional'], 'valid', [apdu(getData(T.SUITE), expect(sw('9000'), { data: suiteHex(k) }))]);
  b.test('GET DATA D7 life cycle OPERATIONAL', ['GetData', 'Functional'], 'valid', [apdu(getData(T.LIFECYCLE), expect(sw('9000'), { data: '07' }))]);
  // The identifying objects answer an authenticated issuer only (EXTERNAL AUTHENTICATE with the test authority first).
  const A = AUTHENTICATE;
  b.test('EXTERNAL AUTHENTICATE, then GET DATA C6 card serial (8 bytes)', ['GetData', 'Functional', 'IssuerAuth'], 'valid', [A, apdu(getData(T.CARD_SERIAL), expect(sw('9000'), { length: 8 }))]);
  b.test('EXTERNAL AUTHENTICATE, then GET DATA D8 capacity (12 bytes)', ['GetData', 'Functional'], 'valid', [A, apdu(getData(T.CAPACITY), expect(sw('9000'), { length: 12 }))]);
  b.test('EXTERNAL AUTHENTICATE, then GET DATA D9 installed key ids: exactly the test profile', ['GetData', 'Functional'], 'valid', [A, apdu(getData(T.INSTALLED_KEYS), expect(sw('9000'), { data: installedKeysHex(k) }))]);
  if (rsa) {
    b.test('GET DATA D3 card encryption public key (RSA-2048), fetched with GET RESPONSE', ['GetData', 'Functional'], 'valid', [
      A,
      apdu(getData(T.CARD_ENCRYPTION_PUBLIC_KEY), expect(sw('9000'), { check: { kind: 'public-key', bits: 2048 } })),
    ]);
    b.test('GET DATA D4 card signing public key (RSA-2048)', ['GetData', 'Functional'], 'valid', [A, apdu(getData(T.CARD_SIGNING_PUBLIC_KEY), expect(sw('9000'), { check: { kind: 'public-key', bits: 2048 } }))]);
    b.test('GET DATA D5 encryption certificate, issued by the test CA for this card', ['GetData', 'Functional'], 'valid', [
      A,
      apdu(getData(T.CARD_ENCRYPTION_CERTIFICATE, 65536), expect(sw('9000'), { check: { kind: 'certificate', usage: 'encryption' } })),
    ]);
    b.test('GET DATA D6 signing certificate, issued by the test CA for this card', ['GetData', 'Functional'], 'valid', [
      A,
      apdu(getData(T.CARD_SIGNING_CERTIFICATE, 65536), expect(sw('9000'), { check: { kind: 'certificate', usage: 'signature' } })),
    ]);
    b.test('GET DATA DB card identity on an RSA card: absent', ['GetData'], 'invalid', [A, apdu(getData(T.CARD_IDENTITY), expect(sw('6A88')))]);
  } else {
    b.test('GET DATA D3 card encryption public key: the card identity under the test KGC (hid 03)', ['GetData', 'Functional'], 'valid', [
      A,
      apdu(getData(T.CARD_ENCRYPTION_PUBLIC_KEY), expect(sw('9000'), { check: { kind: 'identity-key', usage: 'encryption' } })),
    ]);
    b.test('GET DATA D4 card signing public key: the card identity under the test KGC (hid 01)', ['GetData', 'Functional'], 'valid', [
      A,
      apdu(getData(T.CARD_SIGNING_PUBLIC_KEY), expect(sw('9000'), { check: { kind: 'identity-key', usage: 'signature' } })),
    ]);
    b.test('GET DATA D5 encryption certificate on an SM9 card: absent', ['GetData'], 'invalid', [A, apdu(getData(T.CARD_ENCRYPTION_CERTIFICATE), expect(sw('6A88')))]);
    b.test('GET DATA D6 signing certificate on an SM9 card: absent', ['GetData'], 'invalid', [A, apdu(getData(T.CARD_SIGNING_CERTIFICATE), expect(sw('6A88')))]);
    b.test('GET DATA DB card identity: eticket:card: and the serial', ['GetData', 'Functional'], 'valid', [A, apdu(getData(T.CARD_IDENTITY), expect(sw('9000'), { check: { kind: 'card-identity' } }))]);
  }
  b.test('GET DATA of a tag apdu-spec does not list', ['GetData', 'WrongP1P2'], 'invalid', [apdu(getData(0xc7), expect(sw('6A86')))]);
  b.test(`GET DATA ${bigName} with ${firstHow}: ${chunk} bytes then 61XX, GET RESPONSE gives the rest`, ['ResponseChaining'], 'valid', [
    A,
    apdu(firstPart, expect(sw(`61${hex(Uint8Array.of(bigLen - chunk))}`), { length: chunk })),
    apdu(cmd(0x00, 0xc0, 0x00, 0x00, undefined, bigLen - chunk), expect(sw('9000'), { length: bigLen - chunk })),
  ]);
  b.test('GET RESPONSE in pieces: Le below the remainder gives 61XX again', ['ResponseChaining'], 'valid', [
    A,
    apdu(firstPart, expect(sw('61XX'), { length: chunk })),
    apdu(cmd(0x00, 0xc0, 0x00, 0x00, undefined, 16), expect(sw(`61${hex(Uint8Array.of(bigLen - chunk - 16))}`), { length: 16 })),
    apdu(cmd(0x00, 0xc0, 0x00, 0x00, undefined, 256), expect(sw('9000'), { length: bigLen - chunk - 16 })),
  ]);
  b.test('GET DATA without Le (case 1 form): the data wait behind 61XX', ['ResponseChaining'], 'valid', [
    apdu('80CA00DA', expect(sw('6101'), { length: 0 })),
    apdu('00C0000001', expect(sw('9000'), { data: VERSION_HEX })),
  ]);
  b.test('Another command discards pending response data', ['ResponseChaining'], 'invalid', [
    A,
    apdu(firstPart, expect(sw('61XX'))),
    apdu(getData(T.SUITE), expect(sw('9000'), { data: suiteHex(k) })),
    apdu('00C0000000', expect(sw('6985'))),
  ]);
  b.test('GET RESPONSE with P1=01 while data are pending', ['ResponseChaining', 'WrongP1P2'], 'invalid', [
    A,
    apdu(firstPart, expect(sw('61XX'))),
    apdu('00C0010000', expect(sw('6A86'))),
  ]);
  const keysLen = installedKeysHex(k).length / 2;
  b.test('Short Le below a short response: 6CXX with the exact length, then the same command with it', ['WrongLe'], 'valid', [
    A,
    apdu(getData(T.INSTALLED_KEYS, 1), expect(sw(`6C${hex(Uint8Array.of(keysLen))}`), { length: 0 })),
    apdu(getData(T.INSTALLED_KEYS, keysLen), expect(sw('9000'), { data: installedKeysHex(k) })),
  ]);
  b.test('GET CHALLENGE with Le=08', ['Functional'], 'valid', [GET_CHALLENGE]);
  b.test('GET CHALLENGE with Le=04: 6C08', ['WrongLe'], 'invalid', [apdu(cmd(0x00, 0x84, 0x00, 0x00, undefined, 4), expect(sw('6C08')))]);
  b.test(`Extended Le (00 0000) on GET DATA ${bigName}: whole answer at once`, ['ExtendedLength'], 'valid', [A, apdu(getData(bigTag, 65536), expect(sw('9000'), { length: bigLen }))]);
  b.test('Extended Le of exactly the answer length', ['ExtendedLength'], 'valid', [A, apdu(cmd(0x80, 0xca, 0x00, bigTag, undefined, bigLen, true), expect(sw('9000'), { length: bigLen }))]);
  b.test('Extended Le below the answer: Ne bytes and 61XX (no 6CXX for extended)', ['ExtendedLength', 'ResponseChaining'], 'valid', [
    A,
    apdu(cmd(0x80, 0xca, 0x00, bigTag, undefined, 100, true), expect(sw('61XX'), { length: 100 })),
  ]);

  // Malformed lengths: each is a byte string no ISO length rule can read, or one the command's case forbids.
  const malformed: [string, string][] = [
    ['APDU of 3 bytes', '80CA00'],
    ['Lc=05 with 3 data bytes', '80500000 05 010203'],
    ['Lc=02 with 2 data bytes and 2 extra bytes', '80500000 02 0102 0000'],
    ['extended length field truncated (00 01)', '80500000 0001'],
    ['extended Lc of zero', '80500000 000000 00'],
    ['extended Lc=0010 with 5 data bytes', '80500000 000010 0102030405'],
    ['LOCK (case 1) with Le', '805E0000 00'],
    ['GET DATA (case 2) with command data', '80CA00D1 01 00 00'],
    ['SELECT (case 3) without data', '00A40400 00'],
    ['LOAD (case 3) without data', '80500000'],
    ['WRITE USAGE (case 4) without data, extended Le', '80560000 000000'],
  ];
  for (const [what, h] of malformed) b.test(`Malformed: ${what}`, ['MalformedLength'], 'invalid', [apdu(h, expect(sw('6700')))]);
  const over = new Uint8Array(LIMITS.maxCommandData + 1).fill(0xb1);
  b.test(`Extended Lc of ${over.length} bytes, over the ${LIMITS.maxCommandData}-byte buffer`, ['ExtendedLengthAbuse', 'MalformedLength'], 'invalid', [apdu(cmd(0x80, 0x50, 0x00, 0x00, over, undefined, true), expect(sw('6700')))]);

  const clas: [string, string, string[]][] = [
    ['CLA FF', 'FFCA00D100', ['WrongCla']],
    ['CLA 40 (bit 0x40 set)', '40CA00D100', ['WrongCla']],
    ['CLA 81: logical channel 1', '81CA00D100', ['WrongCla']],
    ['CLA 04: ISO secure messaging', '04A4040C09' + hex(AID), ['WrongCla']],
    ['CLA 8C: proprietary secure messaging', '8CCA00D100', ['WrongCla']],
    ['CLA 00 on a proprietary INS', '00CA00D100', ['WrongCla']],
    ['CLA 80 on an interindustry INS (SELECT)', '80A4040C09' + hex(AID), ['WrongCla']],
  ];
  const claSw: Record<string, string> = { 'CLA FF': '6E00', 'CLA 40 (bit 0x40 set)': '6E00', 'CLA 81: logical channel 1': '6881', 'CLA 04: ISO secure messaging': '6882', 'CLA 8C: proprietary secure messaging': '6882' };
  for (const [what, h, flags] of clas) b.test(what, flags, 'invalid', [apdu(h, expect(sw(claSw[what] ?? '6E00')))]);
  for (const ins of [0x00, 0x20, 0x90, 0xfe]) b.test(`INS ${hex(Uint8Array.of(ins))} in class 80`, ['WrongIns'], 'invalid', [apdu(cmd(0x80, ins, 0x00, 0x00, undefined, 256), expect(sw('6D00')))]);
  // From the spec's P1 and P2 lists: the first value each list lacks, the other byte valid.
  for (const c of cases) {
    const spec = protocol.commands.find((p) => p.name === c.name)!;
    const missing = (list: string[]) => [...Array(256).keys()].find((v) => !list.includes(hex(Uint8Array.of(v))))!;
    for (const [p1, p2] of [[missing(spec.p1), c.p2], [c.p1, missing(spec.p2)]]) {
      b.test(`${c.name} with P1-P2 ${hex(Uint8Array.of(p1, p2))}`, ['WrongP1P2'], 'invalid', [apdu(cmd(c.cla, c.ins, p1, p2, c.data, c.ne), expect(sw('6A86')))]);
    }
  }

  b.test('Chaining on GET DATA, which takes no data', ['ChainingAbuse'], 'invalid', [apdu('90CA00D10100', expect(sw('6884')))]);
  b.test('Chaining on GET CHALLENGE', ['ChainingAbuse'], 'invalid', [apdu('10840000 01 00', expect(sw('6884')))]);
  b.test('Chained part with Le', ['ChainingAbuse', 'MalformedLength'], 'invalid', [apdu('90500000 01 B1 00', expect(sw('6700')))]);
  b.test('A chain left open, then another command: 6883 and the chain is gone', ['ChainingAbuse'], 'invalid', [
    apdu('90500000 01 B1', expect(sw('9000'))),
    apdu(getData(T.SUITE), expect(sw('6883'))),
    apdu(getData(T.SUITE), expect(sw('9000'), { data: suiteHex(k) })),
  ]);
  b.test('A chain continued with another INS', ['ChainingAbuse'], 'invalid', [apdu('90500000 01 B1', expect(sw('9000'))), apdu('90520000 01 C1', expect(sw('6883')))]);
  const part = new Uint8Array(255).fill(0xb1);
  const nParts = Math.floor(LIMITS.maxChainedData / 255) + 1;
  b.test(`A chain of ${nParts} parts of 255 bytes, over ${LIMITS.maxChainedData} bytes`, ['ChainingAbuse'], 'invalid', [
    ...Array.from({ length: nParts - 1 }, () => apdu(cmd(0x90, 0x50, 0x00, 0x00, part), expect(sw('9000')))),
    apdu(cmd(0x90, 0x50, 0x00, 0x00, part), expect(sw('6884'))),
  ]);
  b.test('A chained READ whose joined query is well formed (unknown terminal key: 6982)', ['Chaining', 'UnknownTerminal'], 'invalid', [
    apdu(cmd(0x90, 0x52, 0x00, 0x00, tlv(T.KEY_ID, new Uint8Array(8)).subarray(0, 4)), expect(sw('9000'))),
    apdu(cmd(0x80, 0x52, 0x00, 0x00, tlv(T.KEY_ID, new Uint8Array(8)).subarray(4), 256), expect(sw('6982'))),
  ]);
  b.test('Reset discards an open chain', ['ChainingAbuse'], 'invalid', [
    apdu('90500000 01 B1', expect(sw('9000'))),
    { kind: 'reset' },
    apdu(SELECT_NO_FCI, expect(sw('9000'))),
    apdu(getData(T.SUITE), expect(sw('9000'), { data: suiteHex(k) })),
  ]);

  return b.file(['ISO/IEC 7816-4 framing of the eticket card: SELECT, GET DATA, 61XX / GET RESPONSE, 6CXX, malformed lengths, CLA / INS / P1-P2, chaining and extended length.', 'Static APDUs only: any card personalised with the test profile answers them identically (card serial and keys masked or checked).']);
}

function personalisation(k: TestKeys): VectorFile {
  const b = new FileBuilder('personalisation', k);
  const auth = k.authorities.get('authority')!;
  const keyObject = (keyId: Uint8Array, scopes: string[], key: Uint8Array) => encodeKeyGrant({ keyId, scopes, key });
  const putKey = (p1: number, data: Uint8Array, s: string) => chained(0x80, 0xd8, p1, 0x00, data, expect(sw(s)));
  const authObj = keyObject(auth.keyId, auth.scopes, auth.key.publicKey);
  const dummyCert = (n: number) => concat(Uint8Array.of(0x30, 0x82, (n - 4) >> 8, (n - 4) & 0xff), new Uint8Array(n - 4));

  b.group('A blank card personalised step by step with the test profile, with the refusals of each step. Sequential: leaves the card personalised with the profile.', {
    state: 'blank',
    sequential: true,
  });
  b.test('FCI of a blank card: life cycle PERSONALIZING', ['Select', 'Functional'], 'valid', [apdu(SELECT, expect(sw('9000'), fciHex(1, k)))]);
  b.test('GET DATA D7 life cycle PERSONALIZING', ['GetData'], 'valid', [apdu(getData(T.LIFECYCLE), expect(sw('9000'), { data: '01' }))]);
  b.test('GET DATA D9: no key installed yet', ['GetData'], 'valid', [apdu(getData(T.INSTALLED_KEYS), expect(sw('9000'), { length: 0 }))]);
  const rsa = k.suite === 'rsa';
  b.test(`GET DATA D3 before ${rsa ? 'GENERATE KEY' : 'PUT KEY P1=03'}: absent`, ['GetData'], 'invalid', [apdu(getData(T.CARD_ENCRYPTION_PUBLIC_KEY), expect(sw('6A88')))]);
  b.test('GET DATA D5 before PUT DATA: absent', ['GetData'], 'invalid', [apdu(getData(T.CARD_ENCRYPTION_CERTIFICATE), expect(sw('6A88')))]);
  if (!rsa) b.test('GET DATA DB before PUT DATA DB: absent', ['GetData'], 'invalid', [apdu(getData(T.CARD_IDENTITY), expect(sw('6A88')))]);
  const ticketCommands: [string, string][] = [
    ['LOAD', '80500000 02 B100 00'],
    ['READ', '80520000 02 C100 00'],
    ['VERIFY', '80540000 02 C100 00'],
    ['WRITE USAGE', '80560000 02 B300 00'],
    ['DELETE', '80580000 02 B300 00'],
    ['GET CHALLENGE', '0084000008'],
    ['EXTERNAL AUTHENTICATE', '80820000 02 C100'],
  ];
  for (const [name, h] of ticketCommands) b.test(`${name} before LOCK`, ['Lifecycle'], 'invalid', [apdu(h, expect(sw('6985')))]);
  b.test('LOCK with nothing installed: personalisation incomplete', ['Lifecycle'], 'invalid', [apdu('805E0000', expect(sw('6985')))]);
  const install = (what: Extract<Step, { kind: 'install' }>['what'], st: string, extra: { masterKey?: string; otherCard?: boolean } = {}): Step => ({ kind: 'install', what, ...extra, expect: expect(sw(st)) });
  if (rsa) {
    b.test('PUT KEY P1=03 (SM9 private key) on an RSA card', ['KeyManagement', 'Lifecycle'], 'invalid', [apdu(cmd(0x80, 0xd8, 0x03, 0x00, tlv(T.KEY_MATERIAL, Uint8Array.of(1))), expect(sw('6985')))]);
    b.test('PUT DATA DB (SM9 identity) on an RSA card', ['KeyManagement', 'Lifecycle'], 'invalid', [apdu(cmd(0x80, 0xda, 0x00, T.CARD_IDENTITY, utf8('card@test')), expect(sw('6985')))]);
    b.test('GENERATE KEY P1=01 P2=00: the card encryption key pair (keys 2/3), RSA-2048', ['KeyManagement', 'Functional'], 'valid', [
      apdu(cmd(0x80, 0x46, 0x01, 0x00, undefined, 65536, true), expect(sw('9000'), { check: { kind: 'public-key', bits: 2048 } })),
    ]);
    b.test('GENERATE KEY P1=02: the receipt signing key pair', ['KeyManagement', 'Functional'], 'valid', [apdu(cmd(0x80, 0x46, 0x02, 0x00, undefined, 65536, true), expect(sw('9000'), { check: { kind: 'public-key', bits: 2048 } }))]);
    b.test('GENERATE KEY P1=01 with Le=01: the key is made once, 61XX and its first byte, GET RESPONSE the rest; GET DATA D3 is that key', ['SHORT_LE', 'KeyManagement'], 'valid', [
      apdu(cmd(0x80, 0x46, 0x01, 0x00, undefined, 1), expect(sw('61XX'), { length: 1 })),
      { kind: 'get-response', expect: expect(sw('9000'), { check: { kind: 'public-key', bits: 2048 } }) },
      apdu(getData(T.CARD_ENCRYPTION_PUBLIC_KEY, 65536), expect(sw('9000'), { check: { kind: 'same-answer' } })),
    ]);
    b.test('LOCK with keys but no authority or terminal key: incomplete', ['Lifecycle'], 'invalid', [apdu('805E0000', expect(sw('6985')))]);
    b.test('PUT DATA D5 that is not a DER certificate', ['KeyManagement', 'MalformedTlv'], 'invalid', [apdu(cmd(0x80, 0xda, 0x00, T.CARD_ENCRYPTION_CERTIFICATE, Uint8Array.of(0x04, 0x01, 0x00)), expect(sw('6A80')))]);
    b.test('Certify the generated keys with the test CA: GET DATA D3/D4, PUT DATA D5/D6 (runner-built certificates)', ['KeyManagement', 'Functional'], 'valid', [{ kind: 'certify', expect: expect(sw('9000')) }]);
    b.test('GET DATA D5 now holds the certificate', ['GetData'], 'valid', [apdu(getData(T.CARD_ENCRYPTION_CERTIFICATE, 65536), expect(sw('9000'), { check: { kind: 'certificate', usage: 'encryption' } }))]);
  } else {
    // SM9: no key is generated on the card; the KGC extracts the card's keys for its identity.
    b.test('GENERATE KEY P1=01 on an SM9 card: refused, keys come from the KGC', ['KeyManagement', 'Lifecycle'], 'invalid', [apdu(cmd(0x80, 0x46, 0x01, 0x00, undefined, 256), expect(sw('6985')))]);
    b.test('GENERATE KEY P1=02 on an SM9 card', ['KeyManagement', 'Lifecycle'], 'invalid', [apdu(cmd(0x80, 0x46, 0x02, 0x00, undefined, 256), expect(sw('6985')))]);
    b.test('PUT DATA DB of 65 bytes (identity is 1..64)', ['KeyManagement', 'MalformedTlv'], 'invalid', [apdu(cmd(0x80, 0xda, 0x00, T.CARD_IDENTITY, utf8('x'.repeat(65))), expect(sw('6A80')))]);
    b.test('PUT DATA DB that is not UTF-8', ['KeyManagement', 'MalformedTlv'], 'invalid', [apdu(cmd(0x80, 0xda, 0x00, T.CARD_IDENTITY, Uint8Array.of(0xff, 0xfe)), expect(sw('6A80')))]);
    b.test('PUT DATA DB: the card identity eticket:card:<serial> (runner-built)', ['KeyManagement', 'Functional'], 'valid', [install('identity', '9000')]);
    b.test('GET DATA DB now holds the identity', ['GetData'], 'valid', [apdu(getData(T.CARD_IDENTITY), expect(sw('9000'), { check: { kind: 'card-identity' } }))]);
    b.test('PUT KEY P1=03 whose D0 is not an SM9 key', ['KeyManagement'], 'invalid', [apdu(cmd(0x80, 0xd8, 0x03, 0x00, tlv(T.KEY_MATERIAL, Uint8Array.of(0x80, 0x01, 0x41))), expect(sw('6A80')))]);
    b.test('PUT KEY P1=03 with a tag besides D0', ['KeyManagement', 'MalformedTlv'], 'invalid', [apdu(cmd(0x80, 0xd8, 0x03, 0x00, concat(tlv(T.KEY_ID, new Uint8Array(8)), tlv(T.KEY_MATERIAL, Uint8Array.of(1)))), expect(sw('6A80')))]);
    b.test("PUT KEY P1=03: a decryption key the KGC extracted for another card's identity", ['KeyManagement', 'OtherCard'], 'invalid', [install('encryption-key', '6A80', { otherCard: true })]);
    b.test("PUT KEY P1=04: a signing key the KGC extracted for another card's identity", ['KeyManagement', 'OtherCard'], 'invalid', [install('signing-key', '6A80', { otherCard: true })]);
    b.test('PUT KEY P1=03: the card decryption key (key 3) the test KGC extracts for this identity', ['KeyManagement', 'Functional'], 'valid', [install('encryption-key', '9000')]);
    b.test('PUT KEY P1=04: the card receipt signing key', ['KeyManagement', 'Functional'], 'valid', [install('signing-key', '9000')]);
    b.test('PUT DATA DB of another identity once the keys are in', ['KeyManagement', 'OtherCard'], 'invalid', [install('identity', '6A80', { otherCard: true })]);
    b.test('GET DATA D3: the identity under the encryption master public key', ['GetData', 'Functional'], 'valid', [apdu(getData(T.CARD_ENCRYPTION_PUBLIC_KEY), expect(sw('9000'), { check: { kind: 'identity-key', usage: 'encryption' } }))]);
    b.test('GET DATA D4: the identity under the sign master public key', ['GetData', 'Functional'], 'valid', [apdu(getData(T.CARD_SIGNING_PUBLIC_KEY), expect(sw('9000'), { check: { kind: 'identity-key', usage: 'signature' } }))]);
    b.test('LOCK with keys but no authority or terminal key: incomplete', ['Lifecycle'], 'invalid', [apdu('805E0000', expect(sw('6985')))]);
    b.test('PUT DATA D5 that is not a DER certificate', ['KeyManagement', 'MalformedTlv'], 'invalid', [apdu(cmd(0x80, 0xda, 0x00, T.CARD_ENCRYPTION_CERTIFICATE, Uint8Array.of(0x04, 0x01, 0x00)), expect(sw('6A80')))]);
  }
  const wrongId = authObj.slice();
  wrongId[2] ^= 0x01;
  b.test('PUT KEY authority whose C1 is not the key id of D0', ['KeyManagement'], 'invalid', putKey(0x01, wrongId, '6A80'));
  b.test('PUT KEY authority without an operator scope', ['KeyManagement', 'MalformedTlv'], 'invalid', putKey(0x01, concat(tlv(T.KEY_ID, auth.keyId), tlv(T.KEY_MATERIAL, auth.key.publicKey)), '6A80'));
  b.test('PUT KEY authority with a truncated TLV', ['KeyManagement', 'TruncatedTlv'], 'invalid', putKey(0x01, authObj.subarray(0, authObj.length - 1), '6A80'));
  b.test('PUT KEY authority with an unknown tag', ['KeyManagement', 'MalformedTlv'], 'invalid', putKey(0x01, concat(authObj, tlv(0xc2, Uint8Array.of(0))), '6A80'));
  b.test('PUT KEY authority whose D0 is not a public key', ['KeyManagement'], 'invalid', putKey(0x01, keyObject(Uint8Array.from(Buffer.from('0001020304050607', 'hex')), ['*'], Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01)), '6A80'));
  b.test('PUT KEY terminal whose D0 is a single key, not a bundle', ['KeyManagement'], 'invalid', putKey(0x02, authObj, '6A80'));
  b.test('PUT KEY the test authority key (key 6)', ['KeyManagement', 'Functional', 'Chaining'], 'valid', putKey(0x01, authObj, '9000'));
  b.test('PUT KEY the same authority key again', ['KeyManagement', 'Duplicate'], 'invalid', putKey(0x01, authObj, '6A89'));
  for (const t of [...k.terminals.values()].filter((t) => t.installed)) {
    b.test(`PUT KEY terminal bundle "${t.name}" (key 4), scopes ${t.scopes.join(',')}`, ['KeyManagement', 'Functional', 'Chaining'], 'valid', putKey(0x02, keyObject(t.keys.keyId, t.scopes, t.keys.publicKey), '9000'));
  }
  const mk = k.masterKeys.get('operator')!;
  const symObj = (keyId: Uint8Array, operator: string, key: Uint8Array) => encodeDiversifiedKey({ keyId, operator, key, privacyKey: new Uint8Array(16).fill(0x5a) });
  const symBad: [string, Uint8Array, string[]][] = [
    ["operator '*' (a diversified key belongs to one operator)", symObj(mk.keyId, '*', new Uint8Array(16)), ['KeyManagement']],
    ['a key of 15 bytes', symObj(mk.keyId, mk.operator, new Uint8Array(15)), ['KeyManagement', 'MalformedTlv']],
    ['two operators', concat(tlv(T.KEY_ID, mk.keyId), tlv(T.OPERATOR_SCOPE, utf8('A')), tlv(T.OPERATOR_SCOPE, utf8('B')), tlv(T.KEY_MATERIAL, new Uint8Array(16))), ['KeyManagement', 'MalformedTlv']],
    ['D0 before C9', concat(tlv(T.KEY_ID, mk.keyId), tlv(T.KEY_MATERIAL, new Uint8Array(16)), tlv(T.OPERATOR_SCOPE, utf8(mk.operator))), ['KeyManagement', 'MalformedTlv']],
    ['a key id of 7 bytes', symObj(mk.keyId.subarray(0, 7), mk.operator, new Uint8Array(16)), ['KeyManagement', 'MalformedTlv']],
  ];
  for (const [what, data, flags] of symBad) b.test(`PUT KEY P1=05 (sym) with ${what}`, flags, 'invalid', [apdu(cmd(0x80, 0xd8, 0x05, 0x00, data), expect(sw('6A80')))]);
  for (const m of [...k.masterKeys.values()].filter((m) => m.installed)) {
    b.test(`PUT KEY P1=05: K_card of master key "${m.name}" (operator ${m.operator}) diversified for this serial`, ['KeyManagement', 'Functional', 'SymGate'], 'valid', [install('sym-key', '9000', { masterKey: m.name })]);
  }
  b.test('PUT KEY P1=05 under a key id the card already holds', ['KeyManagement', 'Duplicate'], 'invalid', [install('sym-key', '6A89', { masterKey: 'operator' })]);
  b.test('GET DATA D9: exactly the test profile key ids', ['GetData'], 'valid', [apdu(getData(T.INSTALLED_KEYS), expect(sw('9000'), { data: installedKeysHex(k) }))]);
  b.test('LOCK', ['Lifecycle', 'Functional'], 'valid', [apdu('805E0000', expect(sw('9000')))]);
  b.test('GET DATA D7 life cycle OPERATIONAL after LOCK', ['GetData', 'Lifecycle'], 'valid', [apdu(getData(T.LIFECYCLE), expect(sw('9000'), { data: '07' }))]);
  b.test('GET DATA C6 after LOCK without EXTERNAL AUTHENTICATE: the serial is no longer open', ['GetData', 'Lifecycle', 'KEYLESS'], 'invalid', [apdu(getData(T.CARD_SERIAL), expect(sw('6982')))]);
  b.test('GENERATE KEY after LOCK', ['Lifecycle', 'KeyManagement'], 'invalid', [apdu(cmd(0x80, 0x46, 0x01, 0x00, undefined, 256), expect(sw('6985')))]);
  b.test('PUT KEY after LOCK', ['Lifecycle', 'KeyManagement'], 'invalid', putKey(0x01, keyObject(k.authorities.get('authority-other')!.keyId, ['*'], k.authorities.get('authority-other')!.key.publicKey), '6985'));
  b.test('PUT DATA after LOCK', ['Lifecycle', 'KeyManagement'], 'invalid', [apdu(cmd(0x80, 0xda, 0x00, T.CARD_ENCRYPTION_CERTIFICATE, dummyCert(32)), expect(sw('6985')))]);
  b.test('PUT KEY P1=05 (sym) after LOCK', ['Lifecycle', 'KeyManagement', 'SymGate'], 'invalid', [install('sym-key', '6985', { masterKey: 'operator-other' })]);
  if (!rsa) b.test('PUT KEY P1=03 after LOCK', ['Lifecycle', 'KeyManagement'], 'invalid', [install('encryption-key', '6985')]);
  b.test('LOCK again', ['Lifecycle'], 'invalid', [apdu('805E0000', expect(sw('6985')))]);

  b.group('A blank card with a small NVM: key generation and certificates that do not fit', { state: 'blank', capacity: 1400, disposable: true });
  if (rsa) b.test('GENERATE KEY on a card with 1400 bytes of NVM', ['KeyManagement', 'CardFull'], 'invalid', [apdu(cmd(0x80, 0x46, 0x01, 0x00, undefined, 256), expect(sw('6A84')))]);
  b.test('PUT DATA of a 1000-byte certificate on a card with 1400 bytes of NVM', ['KeyManagement', 'CardFull'], 'invalid', chained(0x80, 0xda, 0x00, T.CARD_ENCRYPTION_CERTIFICATE, dummyCert(1000), expect(sw('6A84'))));
  b.test('The refusals left the card blank', ['KeyManagement', 'CardFull'], 'valid', [apdu(getData(T.CARD_ENCRYPTION_PUBLIC_KEY), expect(sw('6A88')))]);

  b.group('A blank card whose terminal key table is filled', { state: 'blank', disposable: true, sequential: true });
  // Distinct valid bundles from pairs of the test keys: only the table limit is under test.
  const bundles: Uint8Array[] = [];
  if (rsa) {
    const pool = k.allKeys;
    for (let i = 0; i < pool.length && bundles.length < LIMITS.maxTerminalKeys + 1; i++) {
      for (let j = 0; j < pool.length && bundles.length < LIMITS.maxTerminalKeys + 1; j++) {
        bundles.push(concat(tlv(0x80, pool[i].publicKey), tlv(0x81, pool[j].publicKey)));
      }
    }
  } else {
    // SM9 public keys are identities under the KGC's master public keys: any identity makes a valid one.
    for (let i = 0; i <= LIMITS.maxTerminalKeys; i++) {
      const id = `eticket:test:fill-${i + 1}`;
      bundles.push(concat(tlv(0x80, sm9EncryptionPublicKey(id, k.kgc!.encMasterPublicKey)), tlv(0x81, sm9SigningPublicKey(id, k.kgc!.signMasterPublicKey))));
    }
  }
  const bundleObj = (bundle: Uint8Array) => keyObject(keyId(bundle), ['*'], bundle);
  for (const [i, bundle] of bundles.slice(0, LIMITS.maxTerminalKeys).entries()) {
    b.test(`PUT KEY terminal bundle ${i + 1} of ${LIMITS.maxTerminalKeys}`, ['KeyManagement'], 'valid', putKey(0x02, bundleObj(bundle), '9000'));
  }
  b.test(`PUT KEY a terminal bundle over the ${LIMITS.maxTerminalKeys}-key table`, ['KeyManagement', 'CardFull'], 'invalid', putKey(0x02, bundleObj(bundles[LIMITS.maxTerminalKeys]), '6A84'));
  // The card cannot check a K_card against its key id (it never sees MK), so made-up ids and keys fill the table.
  const fillSym = (i: number) => symObj(Uint8Array.of(0x5e, 0x11, 0, 0, 0, 0, 0, i), `OP${i}`, new Uint8Array(16).fill(i));
  for (let i = 1; i <= LIMITS.maxSymmetricKeys; i++) b.test(`PUT KEY P1=05 sym key ${i} of ${LIMITS.maxSymmetricKeys}`, ['KeyManagement', 'SymGate'], 'valid', [apdu(cmd(0x80, 0xd8, 0x05, 0x00, fillSym(i)), expect(sw('9000')))]);
  b.test(`PUT KEY P1=05 over the ${LIMITS.maxSymmetricKeys}-key sym table`, ['KeyManagement', 'CardFull', 'SymGate'], 'invalid', [apdu(cmd(0x80, 0xd8, 0x05, 0x00, fillSym(LIMITS.maxSymmetricKeys + 1)), expect(sw('6A84')))]);

  return b.file([
    rsa
      ? 'Personalisation of a blank RSA card with the TEST ONLY profile: GENERATE KEY, PUT DATA (certificates), PUT KEY (authority, terminal, sym), LOCK, and their refusals before and after LOCK.'
      : 'Personalisation of a blank SM9 card with the TEST ONLY profile: PUT DATA DB (identity), PUT KEY P1=03/04 (card keys the test KGC extracts at run time for the card serial), PUT KEY (authority, terminal, sym), LOCK, and their refusals.', 'The first group leaves the card personalised with the test profile, so a blank card in a reader can run the other files afterwards.']);
}


function loadArea(k: TestKeys): VectorFile {
  const b = new FileBuilder('load', k);
  b.group('LOAD (patent 611-614): sealed tickets, each check of the card in the order apdu-spec gives');
  b.test('LOAD a ticket sealed to this card', ['Functional'], 'valid', [load(b.ticket('T1'))]);
  b.test('LOAD a ticket with every TF_A field', ['Functional'], 'valid', [
    load(b.ticket('T2', { coach: '05', travelClass: '2', fare: 55300, currency: 'CNY', passenger: 'ZHANG SAN', flags: 1, kind: 1, maxEntries: 2 })),
  ]);
  b.test('LOAD a ticket with only the required TF_A fields', ['Functional'], 'valid', [
    load(b.ticket('T3', { train: undefined as never, origin: undefined as never, destination: undefined as never, departure: undefined as never, seat: undefined as never })),
  ]);
  b.test('LOAD then VERIFY it with TF_V: the card kept TF_A and TF_V intact', ['Functional'], 'valid', [load(b.ticket('T4')), verifyTid(b, 'T4', { tfv: true, usage: { state: ST.NEW, counter: 0, entries: 0 } })]);
  b.test('LOAD the same sealed ticket twice', ['Duplicate'], 'invalid', [load(b.ticket('T5')), load('T5', '6A89', { reuse: true })]);
  b.test('LOAD the same ticket sealed again (new envelope, same operator and TID)', ['Duplicate'], 'invalid', [load(b.ticket('T6')), { kind: 'load', ticket: 'T6', expect: expect(sw('6A89')) }]);
  const envelopeCases: [string, Extract<Step, { kind: 'load' }>['mutation'], string, string[]][] = [
    ['envelope truncated by one byte', { envelope: 'truncated' }, '6A80', ['MalformedEnvelope', 'TruncatedTlv']],
    ['envelope with a trailing byte', { envelope: 'trailing-byte' }, '6A80', ['MalformedEnvelope', 'MalformedTlv']],
    ['envelope with IV and ciphertext swapped', { envelope: 'fields-swapped' }, '6A80', ['MalformedEnvelope', 'MalformedTlv']],
    ['envelope version 2', { envelope: 'version-2' }, '6A80', ['MalformedEnvelope']],
    ['envelope of another suite', { envelope: 'suite-other' }, '6A80', ['MalformedEnvelope']],
    ['plaintext is TF_A only', { payload: 'face-only' }, '6A80', ['MalformedPayload']],
    ['plaintext is TF_V then TF_A', { payload: 'tfv-first' }, '6A80', ['MalformedPayload']],
    ['plaintext with a trailing byte', { payload: 'trailing-byte' }, '6A80', ['MalformedPayload', 'MalformedTlv']],
    ['MAC bit 0 flipped', { flip: { field: 'mac', bit: 0 } }, '6988', ['TamperedMac']],
    ['MAC bit 127 flipped', { flip: { field: 'mac', bit: 127 } }, '6988', ['TamperedMac']],
    ['ciphertext bit 7 flipped', { flip: { field: 'ciphertext', bit: 7 } }, '6988', ['TamperedMac']],
    ['ciphertext bit 1000 flipped (a later block)', { flip: { field: 'ciphertext', bit: 1000 } }, '6988', ['TamperedMac']],
    ['IV bit 3 flipped', { flip: { field: 'iv', bit: 3 } }, '6988', ['TamperedMac']],
    ['key encapsulation bit 1000 flipped', { flip: { field: 'encapsulation', bit: 1000 } }, '6988', ['TamperedMac']],
    ['valid MAC over a plaintext without ISO padding', { payload: 'bad-padding' }, '6988', ['PaddingOracle']],
    ['sealed to another card serial', { recipient: 'other-card' }, '9102', ['OtherCard']],
    ['TF_V signed by an authority key the card does not hold', { authority: 'authority-other' }, '6A88', ['UnknownAuthority']],
    ['TF_V signature bit 9 flipped', { flip: { field: 'tfv-signature', bit: 9 } }, '9101', ['ForgedTfv']],
    ['TF_V naming another suite', { tfvSuite: k.suite === 'rsa' ? SUITE.sm9 : SUITE.rsa }, '9101', ['ForgedTfv']],
    ['TF_A seat changed after signing', { alterFace: { seat: '99Z' } }, '9101', ['ForgedTfv']],
    ['TF_A fare changed after signing', { alterFace: { fare: 1 } }, '9101', ['ForgedTfv']],
  ];
  for (const [i, [what, mutation, s, flags]] of envelopeCases.entries()) {
    const ref = b.ticket(`M${i + 1}`);
    b.test(`LOAD: ${what}`, flags, 'invalid', [{ kind: 'load', ticket: ref, mutation, expect: expect(sw(s)) }, load(ref)]);
  }
  b.test('LOAD after the ticket was deleted (tombstone): the same sealed bytes', ['Replay'], 'invalid', [
    load(b.ticket('R1')),
    verifyTid(b, 'R1'),
    del('R1', '9000', {}, 1),
    load('R1', '9103', { reuse: true }),
  ]);
  b.test('LOAD after the ticket was deleted: sealed again by the authority', ['Replay'], 'invalid', [
    load(b.ticket('R2')),
    verifyTid(b, 'R2'),
    del('R2', '9000', {}, 1),
    { kind: 'load', ticket: 'R2', expect: expect(sw('9103')) },
  ]);

  b.group('A full card: LOAD and WRITE USAGE answer 6A84, DELETE still works', { sequential: true });
  b.ticket('F1');
  b.ticket('F2');
  b.test('Fill the card with tickets until LOAD answers 6A84, then LOAD one more', ['CardFull'], 'invalid', [
    load('F1'),
    { kind: 'fill', until: 'load-refused', expect: expect(sw('6A84')) },
    load('F2', '6A84'),
  ]);
  b.test('Fill the usage records until WRITE USAGE answers 6A84, then WRITE USAGE with a long gate and station', ['CardFull'], 'invalid', [
    { kind: 'fill', until: 'usage-refused', expect: expect(sw('6A84')) },
    verifyTid(b, 'F1'),
    use('F1', EV.ENTRY, '6A84', { gate: 'GGGGGGGGGGGGGGGG', station: 'SSSSSSSSSSSSSSSS' }),
  ]);
  b.test('DELETE on a full card (tombstones need no new memory), then the LOAD fits', ['CardFull', 'Functional'], 'valid', [verifyTid(b, 'F1'), del('F1', '9000', {}, 1), load('F2')]);

  return b.file(['LOAD of first ciphertexts sealed at run time to the card under test with the TEST ONLY authority key: every refusal of the card, in order.']);
}

function readVerify(k: TestKeys): VectorFile {
  const b = new FileBuilder('read-verify', k);
  b.group('READ (patent 621-622) and VERIFY (631-635): second ciphertexts opened with the test terminal key');
  let n = 0;
  const uniq = () => `RV${++n}`;
  {
    const train = uniq();
    const t = b.ticket('A1', { train, serviceDate: 20260310 });
    const ch = challengeFor(b.nextTcId);
    b.test('READ by train with a terminal challenge: the view opens with the terminal key and echoes it', ['Functional'], 'valid', [
      load(t),
      READ(0, readQuery(k, { challenge: ch, train }), expect(sw('9000'), { check: viewCheck(t, ch, { usage: { state: ST.NEW, counter: 0 } }) })),
    ]);
  }
  {
    const train = uniq();
    const t = b.ticket('A2', { train });
    b.test('READ without a terminal challenge: no challenge in the view', ['Functional'], 'valid', [load(t), READ(0, readQuery(k, { train }), expect(sw('9000'), { check: viewCheck(t, undefined) }))]);
  }
  {
    const train = uniq();
    const early = b.ticket('A3', { train, serviceDate: 20260305 });
    const late = b.ticket('A4', { train, serviceDate: 20260306 });
    const q = readQuery(k, { train });
    b.test('READ first, next, next: tickets in travel order, then a view of no ticket, as long as the others', ['Functional', 'ReadCursor', 'KEYLESS'], 'valid', [
      load(late),
      load(early),
      READ(0, q, expect(sw('9000'), { check: viewCheck(early, undefined), sameLengthAs: 'read' })),
      READ(1, q, expect(sw('9000'), { check: viewCheck(late, undefined), sameLengthAs: 'read' })),
      READ(1, q, expect(sw('9000'), { check: viewCheck(undefined, undefined, { status: 'not_found' }), sameLengthAs: 'read' })),
    ]);
    const train2 = uniq();
    const a = b.ticket('A5', { train: train2, serviceDate: 20260401 });
    const bb = b.ticket('A6', { train: train2, serviceDate: 20260402 });
    b.test('READ from a date: tickets of that date or later only', ['Functional', 'ReadCursor'], 'valid', [
      load(a),
      load(bb),
      READ(0, readQuery(k, { train: train2, date: 20260402 }), expect(sw('9000'), { check: viewCheck(bb, undefined) })),
      READ(1, readQuery(k, { train: train2, date: 20260402 }), expect(sw('9000'), { check: viewCheck(undefined, undefined, { status: 'not_found' }) })),
    ]);
  }
  b.test('READ next without READ first', ['ReadCursor'], 'invalid', [READ(1, readQuery(k, { train: uniq() }), expect(sw('6985')))]);
  {
    const train = uniq();
    const t = b.ticket('A7', { train });
    b.test('READ next with another query than READ first', ['ReadCursor'], 'invalid', [
      load(t),
      READ(0, readQuery(k, { train }), expect(sw('9000'), { check: viewCheck(t, undefined) })),
      READ(1, readQuery(k, { train: uniq() }), expect(sw('6985'))),
    ]);
  }
  b.test('READ of a train with no ticket: a view that says so', ['NotFound'], 'invalid', [READ(0, readQuery(k, { train: 'NO-SUCH-TRAIN' }), expect(sw('9000'), { check: viewCheck(undefined, undefined, { status: 'not_found' }) }))]);
  b.test('READ with a terminal key id the card does not hold', ['UnknownTerminal'], 'invalid', [READ(0, readQuery(k, { terminal: 'terminal-unknown' }), expect(sw('6982')))]);
  {
    const train = uniq();
    const t = b.ticket('A8', { train });
    b.test("READ by an installed terminal not scoped to the ticket's operator: it sees no ticket", ['UnauthorisedTerminal'], 'invalid', [
      load(t),
      READ(0, readQuery(k, { terminal: 'terminal-other', train }), expect(sw('9000'), { check: viewCheck(undefined, undefined, { terminal: 'terminal-other', status: 'not_found' }) })),
    ]);
  }
  const kid = tlv(T.KEY_ID, keyIdOf(k, 'terminal'));
  const readBad: [string, Uint8Array, string[]][] = [
    ['truncated TLV', kid.subarray(0, 5), ['TruncatedTlv']],
    ['key id of 7 bytes', tlv(T.KEY_ID, keyIdOf(k, 'terminal').subarray(0, 7)), ['MalformedTlv']],
    ['duplicate key id', concat(kid, kid), ['MalformedTlv']],
    ['a TID (not allowed in READ)', concat(kid, tlv(T.TID, utf8('X'))), ['MalformedTlv']],
    ['no key id', tlv(T.TRAIN, utf8('G1')), ['MalformedTlv']],
    ['terminal challenge of 15 bytes', concat(kid, tlv(T.TERMINAL_CHALLENGE, new Uint8Array(15))), ['MalformedTlv']],
    ['service date of 3 bytes', concat(kid, tlv(T.SERVICE_DATE, Uint8Array.of(1, 2, 3))), ['MalformedTlv']],
    ['non-minimal length 81 08', concat(Uint8Array.of(T.KEY_ID, 0x81, 0x08), keyIdOf(k, 'terminal')), ['MalformedTlv']],
    ['trailing zero byte', concat(kid, Uint8Array.of(0)), ['MalformedTlv']],
  ];
  for (const [what, data, flags] of readBad) b.test(`READ query with ${what}`, flags, 'invalid', [READ(0, data, expect(sw('6A80')))]);

  {
    const t = b.ticket('V1');
    b.test('VERIFY by TID: view with a fresh card challenge', ['Functional'], 'valid', [load(t), verifyTid(b, t, { usage: { state: ST.NEW, counter: 0 } })]);
    const t2 = b.ticket('V2');
    b.test('VERIFY P1=01 by TID: the view adds TF_V, which verifies with the test authority key', ['Functional'], 'valid', [load(t2), verifyTid(b, t2, { tfv: true })]);
    const train = uniq();
    const t3 = b.ticket('V3', { train, origin: 'XAN', serviceDate: 20260320 });
    const ch = challengeFor(b.nextTcId);
    b.test('VERIFY by date, train and station (origin)', ['Functional'], 'valid', [
      load(t3),
      VERIFY(0, verifyQuery(k, { challenge: ch, date: 20260320, train, station: 'XAN' }), expect(sw('9000'), { check: viewCheck(t3, ch, { card: true }) })),
    ]);
    const train4 = uniq();
    const t4 = b.ticket('V4', { train: train4, destination: 'NKG', serviceDate: 20260321 });
    const ch4 = challengeFor(b.nextTcId);
    b.test('VERIFY by date and station (destination)', ['Functional'], 'valid', [
      load(t4),
      VERIFY(0, verifyQuery(k, { challenge: ch4, date: 20260321, train: train4, station: 'NKG' }), expect(sw('9000'), { check: viewCheck(t4, ch4, { card: true }) })),
    ]);
    b.test('VERIFY by date with a station the ticket does not serve: a view of no ticket', ['NotFound'], 'invalid', [
      load(b.ticket('V5', { train: uniq(), serviceDate: 20260322 })),
      VERIFY(0, verifyQuery(k, { challenge: challengeFor(1), date: 20260322, station: 'NOWHERE' }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(1), { card: true, status: 'not_found' }) })),
    ]);
  }
  b.test('VERIFY of a TID the card never held: a view of no ticket', ['NotFound'], 'invalid', [VERIFY(0, verifyQuery(k, { challenge: challengeFor(2), tid: 'NO-SUCH-TID' }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(2), { card: true, status: 'not_found' }) }))]);
  b.test('VERIFY by a date with no ticket: a view of no ticket', ['NotFound'], 'invalid', [VERIFY(0, verifyQuery(k, { challenge: challengeFor(3), date: 20991231 }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(3), { card: true, status: 'not_found' }) }))]);
  {
    const t = b.ticket('V6');
    b.test('VERIFY of a deleted ticket: a view that says void', ['VoidTicket'], 'invalid', [
      load(t),
      verifyTid(b, t),
      del(t, '9000', {}, 1),
      VERIFY(0, verifyQuery(k, { challenge: challengeFor(4), tid: b.tid(t) }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(4), { card: true, status: 'void' }) })),
    ]);
  }
  b.test('VERIFY with a terminal key id the card does not hold', ['UnknownTerminal'], 'invalid', [VERIFY(0, verifyQuery(k, { terminal: 'terminal-unknown', challenge: challengeFor(5), tid: 'X' }), expect(sw('6982')))]);
  {
    const t = b.ticket('V7');
    b.test("VERIFY by an installed terminal not scoped to the ticket's operator: not found", ['UnauthorisedTerminal'], 'invalid', [
      load(t),
      VERIFY(0, verifyQuery(k, { terminal: 'terminal-other', challenge: challengeFor(6), tid: b.tid(t) }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(6), { terminal: 'terminal-other', card: true, status: 'not_found' }) })),
    ]);
  }
  const ch = tlv(T.TERMINAL_CHALLENGE, challengeFor(7));
  const verifyBad: [string, Uint8Array, string[]][] = [
    ['no terminal challenge', concat(kid, tlv(T.TID, utf8('X'))), ['MalformedTlv']],
    ['neither TID nor date', concat(kid, ch), ['MalformedTlv']],
    ['both TID and date', concat(kid, ch, tlv(T.TID, utf8('X')), tlv(T.SERVICE_DATE, u32(20260301))), ['MalformedTlv']],
    ['TID with a train', concat(kid, ch, tlv(T.TID, utf8('X')), tlv(T.TRAIN, utf8('G1'))), ['MalformedTlv']],
    ['empty TID', concat(kid, ch, tlv(T.TID, new Uint8Array(0))), ['MalformedTlv']],
    ['TID of 33 bytes', concat(kid, ch, tlv(T.TID, utf8('X'.repeat(33)))), ['MalformedTlv']],
    ['TID that is not UTF-8', concat(kid, ch, tlv(T.TID, Uint8Array.of(0xff, 0xfe))), ['MalformedTlv']],
    ['truncated TLV', concat(kid, ch, Uint8Array.of(T.TID, 0x05, 0x41)), ['TruncatedTlv']],
  ];
  for (const [what, data, flags] of verifyBad) b.test(`VERIFY query with ${what}`, flags, 'invalid', [VERIFY(0, data, expect(sw('6A80')))]);
  return b.file(['READ and VERIFY: static queries (test terminal key ids, fixed terminal challenges); the answers differ per card and run, so the runner opens them with the TEST ONLY terminal key and compares TF_A, TF_B and the challenges.']);
}

function usageDelete(k: TestKeys): VectorFile {
  const b = new FileBuilder('usage-delete', k);
  b.group('WRITE USAGE (641-643) and DELETE (651-653): signed commands built at run time with the test terminal key, the pending card challenge and the ticket counter');
  let i = 0;
  const t = (over: TicketFaceJson = {}) => b.ticket(`U${++i}`, over);
  {
    const a = t();
    b.test('ENTRY then EXIT: receipts signed by the card, TF_B updated', ['Functional'], 'valid', [
      load(a),
      verifyTid(b, a),
      use(a, EV.ENTRY, '9000', {}, { counter: 1, usage: { state: ST.INSIDE, entries: 1, lastGate: 'VG01', lastStation: 'BJS' } }),
      verifyTid(b, a, { usage: { state: ST.INSIDE, counter: 1 } }),
      use(a, EV.EXIT, '9000', {}, { counter: 2, usage: { state: ST.EXITED, entries: 1 } }),
    ]);
  }
  {
    const a = t({ maxEntries: 2 });
    b.test('ENTRY, TEMPORARY_EXIT, ENTRY, EXIT, ENTRY (second of two entries)', ['Functional', 'UsageState'], 'valid', [
      load(a),
      verifyTid(b, a),
      use(a, EV.ENTRY, '9000', {}, { counter: 1, usage: { state: ST.INSIDE } }),
      verifyTid(b, a),
      use(a, EV.TEMPORARY_EXIT, '9000', {}, { counter: 2, usage: { state: ST.TEMPORARY_EXIT, temporaryExits: 1 } }),
      verifyTid(b, a),
      use(a, EV.ENTRY, '9000', {}, { counter: 3, usage: { state: ST.INSIDE, entries: 1 } }),
      verifyTid(b, a),
      use(a, EV.EXIT, '9000', {}, { counter: 4, usage: { state: ST.EXITED } }),
      verifyTid(b, a),
      use(a, EV.ENTRY, '9000', {}, { counter: 5, usage: { state: ST.INSIDE, entries: 2 } }),
    ]);
  }
  {
    const a = t();
    b.test('PUNCH and PAPER_PRINTED set their flags in any state', ['Functional', 'UsageState'], 'valid', [
      load(a),
      verifyTid(b, a),
      use(a, EV.PUNCH, '9000', {}, { counter: 1, usage: { state: ST.NEW, flags: 1 } }),
      verifyTid(b, a),
      use(a, EV.PAPER_PRINTED, '9000', {}, { counter: 2, usage: { state: ST.NEW, flags: 3 } }),
    ]);
  }
  const stateCases: [string, number[], number][] = [
    ['EXIT from NEW', [], EV.EXIT],
    ['TEMPORARY_EXIT from NEW', [], EV.TEMPORARY_EXIT],
    ['ENTRY while INSIDE', [EV.ENTRY], EV.ENTRY],
    ['ENTRY after EXIT when the ticket allows one entry', [EV.ENTRY, EV.EXIT], EV.ENTRY],
    ['EXIT from TEMPORARY_EXIT', [EV.ENTRY, EV.TEMPORARY_EXIT], EV.EXIT],
  ];
  for (const [what, before, event] of stateCases) {
    const a = t();
    b.test(`WRITE USAGE ${what}`, ['UsageState'], 'invalid', [
      load(a),
      ...before.flatMap((e, j) => [verifyTid(b, a), use(a, e, '9000', {}, { counter: j + 1 })]),
      verifyTid(b, a),
      use(a, event, '6985'),
    ]);
  }
  {
    const a = t();
    b.test('DELETE: deletion receipt (event FF, no TF_B), then the ticket is void', ['Functional'], 'valid', [load(a), verifyTid(b, a), del(a, '9000', {}, 1)]);
    const c = t();
    b.test('DELETE after usage: counter carries on', ['Functional'], 'valid', [load(c), verifyTid(b, c), use(c, EV.ENTRY, '9000', {}, { counter: 1 }), verifyTid(b, c), del(c, '9000', {}, 2)]);
  }
  // Refusals common to WRITE USAGE and DELETE, table-driven: [what, flags, sw, setup-before-command, mutation, extra].
  type Case = { what: string; flags: string[]; sw: string; prep?: 'verify' | 'challenge' | 'none' | 'used' | 'reset'; mutation?: SignedStep['mutation']; extra?: Partial<SignedStep> };
  const refusals: Case[] = [
    { what: 'with no view pending', flags: ['WrongChallenge'], sw: '6984', prep: 'none' },
    { what: "with GET CHALLENGE's challenge (it arms only EXTERNAL AUTHENTICATE)", flags: ['WrongChallenge', 'CrossMode'], sw: '6984', prep: 'challenge', mutation: { challenge: 'issuer' } },
    { what: 'after a reset cleared the view', flags: ['WrongChallenge'], sw: '6984', prep: 'reset' },
    { what: 'naming another challenge (bit flipped)', flags: ['WrongChallenge'], sw: '6984', mutation: { challenge: 'flip-bit' } },
    { what: 'with a stale counter', flags: ['StaleCounter'], sw: '9104', prep: 'used', mutation: { counterDelta: -1 } },
    { what: 'with a counter ahead of the card', flags: ['StaleCounter'], sw: '9104', mutation: { counterDelta: 1 } },
    { what: 'with signature bit 0 flipped', flags: ['TamperedSignature'], sw: '9106', mutation: { flipSignatureBit: 0 } },
    { what: 'with signature bit 2047 flipped', flags: ['TamperedSignature'], sw: '9106', mutation: { flipSignatureBit: 2047 } },
    { what: 'with the station changed after signing', flags: ['TamperedSignature'], sw: '9106', mutation: { alterAfterSigning: true } },
    { what: "signed with another terminal's key under this key id", flags: ['TamperedSignature'], sw: '9106', mutation: { signWith: 'terminal-other' } },
    { what: 'signed for another card serial', flags: ['OtherCard', 'TamperedSignature'], sw: '9106', mutation: { otherCardSerial: true } },
    { what: 'with a key id the card does not hold', flags: ['UnknownTerminal'], sw: '6982', extra: { terminal: 'terminal-unknown' } },
    { what: "by an installed terminal not scoped to the ticket's operator", flags: ['UnauthorisedTerminal'], sw: '6982', extra: { terminal: 'terminal-other' } },
    { what: 'for a TID the card never held (not the ticket the view showed)', flags: ['NotFound', 'RELAY'], sw: '9107', mutation: { tid: 'NO-SUCH-TID' } },
    { what: 'whose DF21 is not the digest of the view the card showed', flags: ['RELAY'], sw: '9107', mutation: { viewDigest: 'flip-bit' } },
    { what: 'with TID and counter swapped', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'swapped' } },
    { what: 'with a trailing byte after B3', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'trailing-byte' } },
    { what: 'truncated by one byte', flags: ['TruncatedTlv'], sw: '6A80', mutation: { fields: 'truncated' } },
  ];
  for (const name of ['WRITE USAGE', 'DELETE'] as const) {
    const cases: Case[] = [
      ...refusals,
      name === 'WRITE USAGE'
        ? { what: 'without the usage event', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'missing-event' } }
        : { what: 'with a usage event field', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'extra-event' } },
      { what: `signed as ${name === 'DELETE' ? 'WRITE USAGE' : 'DELETE'}`, flags: ['CrossCommand'], sw: '9106', mutation: { signAs: name === 'DELETE' ? 'WRITE USAGE' : 'DELETE' } },
    ];
    if (name === 'WRITE USAGE') cases.push({ what: 'with usage event 09 (undefined)', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'unknown-event' } });
    for (const c of cases) {
      const a = t();
      const send = (s: string, m?: SignedStep['mutation'], extra?: Partial<SignedStep>): Step =>
        name === 'DELETE' ? del(a, s, { mutation: m, ...extra }) : use(a, EV.PUNCH, s, { mutation: m, ...extra });
      const prep: Step[] =
        c.prep === 'none' ? [] : c.prep === 'reset' ? [verifyTid(b, a), { kind: 'reset' }, apdu(SELECT_NO_FCI, expect(sw('9000')))] : c.prep === 'challenge' ? [GET_CHALLENGE] : c.prep === 'used' ? [verifyTid(b, a), use(a, EV.PUNCH, '9000', {}, { counter: 1 }), verifyTid(b, a)] : [verifyTid(b, a)];
      b.test(`${name} ${c.what}`, c.flags, 'invalid', [
        load(a),
        ...prep,
        send(c.sw, c.mutation, c.extra),
        // The refusal changed nothing and spent the challenge: a correct command after a new VERIFY succeeds.
        verifyTid(b, a),
        name === 'DELETE' ? del(a, '9000') : use(a, EV.PUNCH, '9000'),
      ]);
    }
    {
      const a = t();
      const first = name === 'DELETE' ? del(a, '9000', {}, 1) : use(a, EV.PUNCH, '9000', {}, { counter: 1 });
      const again: Step = name === 'DELETE' ? del(a, '6984', { mutation: { replay: true } }) : use(a, EV.PUNCH, '6984', { mutation: { replay: true } });
      b.test(`${name} replayed byte for byte after it succeeded`, ['Replay'], 'invalid', [load(a), verifyTid(b, a), first, again]);
      const c = t();
      const refusedFirst = name === 'DELETE' ? del(c, '9106', { mutation: { flipSignatureBit: 5 } }) : use(c, EV.PUNCH, '9106', { mutation: { flipSignatureBit: 5 } });
      const retry: Step = name === 'DELETE' ? del(c, '6984', { mutation: { challenge: 'previous' } }) : use(c, EV.PUNCH, '6984', { mutation: { challenge: 'previous' } });
      b.test(`${name} retried with the challenge a refused command spent`, ['Replay', 'WrongChallenge'], 'invalid', [load(c), verifyTid(b, c), refusedFirst, retry]);
    }
    {
      const a = t();
      const after: Step = name === 'DELETE' ? del(a, '9107') : use(a, EV.PUNCH, '9107');
      b.test(`${name} of a deleted ticket, after a view that says void`, ['VoidTicket', 'RELAY'], 'invalid', [load(a), verifyTid(b, a), del(a, '9000', {}, 1), verifyTid(b, a, { status: 'void' }), after]);
    }
  }
  return b.file(['WRITE USAGE and DELETE: third ciphertexts the runner signs at run time with the TEST ONLY terminal key over the challenge and digest of the view the card showed and the ticket counter; mutations make the negative vectors.', 'Each refusal is followed by a correct command to show the refusal changed nothing.']);
}

type VerifyStep = Extract<Step, { kind: 'verify' }>;
type MacedStep = Extract<Step, { kind: 'maced-command' }>;

/** VERIFY by the ticket's TID, built by the runner (TIDs vary per run on operator-bound groups). */
function verifyT(mode: 'pki' | 'sym', ticket: string, st = '9000', extra: Partial<VerifyStep> & { sameLengthAs?: string } = {}): Step {
  const { sameLengthAs, ...rest } = extra;
  return { kind: 'verify', mode, ticket, ...rest, expect: expect(sw(st), sameLengthAs ? { sameLengthAs } : {}) };
}

function maced(name: 'WRITE USAGE' | 'DELETE', ticket: string, st: string, o: { event?: number; mutation?: MacedStep['mutation']; receipt?: { counter: number; usage?: Record<string, number | string> } } = {}): Step {
  const event = name === 'DELETE' ? EV.DELETED : (o.event ?? EV.PUNCH);
  return {
    kind: 'maced-command',
    name,
    ticket,
    ...(name === 'WRITE USAGE' ? { event } : {}),
    gate: 'SG01',
    station: 'BJS',
    time: 1772330000,
    ...(o.mutation ? { mutation: o.mutation } : {}),
    expect: expect(sw(st), o.receipt ? { check: { kind: 'mac-receipt', ticket, event, counter: o.receipt.counter, ...(o.receipt.usage ? { usage: o.receipt.usage } : {}) } } : {}),
  };
}

function symGate(k: TestKeys): VectorFile {
  const b = new FileBuilder('sym-gate', k);
  b.group('Gate mode sym (README 3.5): VERIFY P1=02/03 and WRITE USAGE / DELETE P1=01, MACs computed by the runner from the TEST ONLY operator master key and the card serial', {
    operatorBound: true,
  });
  let i = 0;
  const t = (over: TicketFaceJson = {}) => b.ticket(`S${++i}`, over);
  const sv = (ticket: string, st = '9000', extra: Partial<VerifyStep> = {}) => verifyT('sym', ticket, st, extra);
  const pv = (ticket: string, st = '9000', extra: Partial<VerifyStep> = {}) => verifyT('pki', ticket, st, extra);
  {
    const a = t();
    b.test('VERIFY P1=02, WRITE USAGE P1=01 ENTRY (MAC receipt), VERIFY P1=02 shows INSIDE, EXIT', ['SymGate', 'Functional'], 'valid', [
      load(a),
      sv(a, '9000', { usage: { state: ST.NEW, counter: 0 } }),
      maced('WRITE USAGE', a, '9000', { event: EV.ENTRY, receipt: { counter: 1, usage: { state: ST.INSIDE, entries: 1, lastGate: 'SG01', lastStation: 'BJS' } } }),
      sv(a, '9000', { usage: { state: ST.INSIDE, counter: 1 } }),
      maced('WRITE USAGE', a, '9000', { event: EV.EXIT, receipt: { counter: 2, usage: { state: ST.EXITED } } }),
    ]);
    const c = t();
    b.test('VERIFY P1=03 adds TF_V (audit), then PUNCH', ['SymGate', 'Functional'], 'valid', [load(c), sv(c, '9000', { tfv: true }), maced('WRITE USAGE', c, '9000', { receipt: { counter: 1, usage: { flags: 1 } } })]);
    const d = t();
    b.test('DELETE P1=01: MAC receipt (event FF, no TF_B); the ticket is void and cannot be loaded again', ['SymGate', 'Functional', 'VoidTicket', 'Replay'], 'valid', [
      load(d),
      sv(d),
      maced('DELETE', d, '9000', { receipt: { counter: 1 } }),
      sv(d, '9000', { status: 'void' }),
      { kind: 'load', ticket: d, reuse: true, expect: expect(sw('9103')) },
    ]);
    const e = t();
    b.test('pki and sym commands on one ticket share its counter', ['SymGate', 'Functional', 'CrossMode'], 'valid', [
      load(e),
      pv(e),
      use(e, EV.PUNCH, '9000', {}, { counter: 1 }),
      sv(e, '9000', { usage: { counter: 1 } }),
      maced('WRITE USAGE', e, '9000', { event: EV.ENTRY, receipt: { counter: 2 } }),
      pv(e, '9000', { usage: { counter: 2, state: ST.INSIDE } }),
      del(e, '9000', {}, 3),
    ]);
    const f = t();
    b.test('WRITE USAGE P1=01 EXIT from NEW: the usage state machine holds in sym mode too', ['SymGate', 'UsageState'], 'invalid', [load(f), sv(f), maced('WRITE USAGE', f, '6985', { event: EV.EXIT }), sv(f), maced('WRITE USAGE', f, '9000')]);
  }

  b.test('VERIFY P1=02 under a master key the card does not hold (another key version)', ['SymGate', 'UnknownTerminal'], 'invalid', [load(t()), sv(`S${i}`, '6982', { key: 'operator-other' })]);
  b.test('VERIFY P1=02 naming a pki terminal key id', ['SymGate', 'UnknownTerminal', 'CrossMode'], 'invalid', [load(t()), sv(`S${i}`, '6982', { key: 'terminal' })]);
  b.test('VERIFY P1=00 (pki) naming a sym master key id', ['SymGate', 'UnknownTerminal', 'CrossMode'], 'invalid', [load(t()), pv(`S${i}`, '6982', { key: 'operator' })]);
  b.test("VERIFY P1=02 with the key of another operator: the ticket is not found", ['SymGate', 'UnauthorisedTerminal'], 'invalid', [load(t()), sv(`S${i}`, '9000', { key: 'operator-nobody', status: 'not_found' })]);
  const mkId = tlv(T.KEY_ID, k.masterKeys.get('operator')!.keyId);
  const rt = tlv(T.TERMINAL_CHALLENGE, challengeFor(9));
  b.test('VERIFY P1=02 of a TID the card never held: a session view of no ticket', ['SymGate', 'NotFound'], 'invalid', [load(t()), sv(`S${i}`, '9000', { tid: 'NO-SUCH-TID', status: 'not_found' })]);
  const symQueryBad: [string, Uint8Array, string[]][] = [
    ['no terminal challenge', concat(mkId, tlv(T.TID, utf8('X'))), ['MalformedTlv']],
    ['a terminal challenge of 8 bytes', concat(mkId, tlv(T.TERMINAL_CHALLENGE, new Uint8Array(8)), tlv(T.TID, utf8('X'))), ['MalformedTlv']],
    ['both TID and date', concat(mkId, rt, tlv(T.TID, utf8('X')), tlv(T.SERVICE_DATE, u32(20260301))), ['MalformedTlv']],
    ['a truncated TLV', concat(mkId, rt, Uint8Array.of(T.TID, 0x05, 0x41)), ['TruncatedTlv']],
  ];
  for (const [what, data, flags] of symQueryBad) b.test(`VERIFY P1=03 query with ${what}`, ['SymGate', ...flags], 'invalid', [VERIFY(0x03, data, expect(sw('6A80')))]);
  {
    const a = t();
    b.test("A pki WRITE USAGE naming the sym session's card challenge", ['CrossMode', 'WrongChallenge'], 'invalid', [load(a), sv(a), use(a, EV.PUNCH, '6984', { mutation: { challenge: 'session' } }), sv(a), maced('WRITE USAGE', a, '9000')]);
  }

  type Case = { what: string; flags: string[]; sw: string; prep?: (a: string) => Step[]; mutation?: MacedStep['mutation']; other?: boolean };
  const reset: Step = { kind: 'reset' };
  const selectNoFci = apdu(SELECT_NO_FCI, expect(sw('9000')));
  const refusals: Case[] = [
    { what: 'with no session open', flags: ['SessionLifetime', 'WrongChallenge'], sw: '6984', prep: () => [] },
    { what: 'after SELECT ended the session', flags: ['SessionLifetime'], sw: '6984', prep: (a) => [sv(a), selectNoFci] },
    { what: 'after a reset ended the session', flags: ['SessionLifetime'], sw: '6984', prep: (a) => [sv(a), reset, selectNoFci] },
    { what: 'after GET CHALLENGE ended the session', flags: ['SessionLifetime', 'CrossMode'], sw: '6984', prep: (a) => [sv(a), GET_CHALLENGE] },
    { what: 'after a pki VERIFY ended the session', flags: ['SessionLifetime', 'CrossMode'], sw: '6984', prep: (a) => [sv(a), pv(a)] },
    { what: 'naming the pending pki challenge (no session)', flags: ['CrossMode', 'WrongChallenge'], sw: '6984', prep: () => [GET_CHALLENGE], mutation: { challenge: 'pki' } },
    { what: 'naming another RC (bit flipped)', flags: ['WrongChallenge'], sw: '6984', mutation: { challenge: 'flip-bit' } },
    { what: 'with MAC bit 0 flipped', flags: ['SessionMac'], sw: '9106', mutation: { flipMacBit: 0 } },
    { what: 'with MAC bit 63 flipped', flags: ['SessionMac'], sw: '9106', mutation: { flipMacBit: 63 } },
    { what: 'with the station changed after MACing', flags: ['SessionMac'], sw: '9106', mutation: { alterAfterMac: true } },
    { what: 'MACed for another card serial', flags: ['SessionMac', 'OtherCard'], sw: '9106', mutation: { otherCardSerial: true } },
    { what: 'MACed under K_card of another master key version', flags: ['SessionMac'], sw: '9106', mutation: { macWith: 'operator-other' } },
    { what: 'with a stale counter', flags: ['StaleCounter'], sw: '9104', prep: (a) => [sv(a), maced('WRITE USAGE', a, '9000', { receipt: { counter: 1 } }), sv(a)], mutation: { counterDelta: -1 } },
    { what: 'with a counter ahead of the card', flags: ['StaleCounter'], sw: '9104', mutation: { counterDelta: 1 } },
    { what: 'for a TID the card never held (not the ticket the session showed)', flags: ['NotFound', 'RELAY'], sw: '9107', mutation: { tid: 'NO-SUCH-TID' } },
    { what: "in a session of another operator's key, which showed its own ticket", flags: ['UnauthorisedTerminal', 'RELAY'], sw: '9107', other: true },
    { what: 'with TID and counter swapped', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'swapped' } },
    { what: 'with a trailing byte after B6', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'trailing-byte' } },
    { what: 'truncated by one byte', flags: ['TruncatedTlv'], sw: '6A80', mutation: { fields: 'truncated' } },
    { what: 'sent with P1=00 (B6 where pki expects B3)', flags: ['MalformedTlv', 'CrossMode'], sw: '6A80', mutation: { p1: 0x00 } },
  ];
  for (const name of ['WRITE USAGE', 'DELETE'] as const) {
    const other = name === 'DELETE' ? 'WRITE USAGE' : 'DELETE';
    const cases: Case[] = [
      ...refusals,
      name === 'WRITE USAGE'
        ? { what: 'without the usage event', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'missing-event' } }
        : { what: 'with a usage event field', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'extra-event' } },
      { what: `MACed as ${other}`, flags: ['SessionMac', 'CrossCommand'], sw: '9106', mutation: { macAs: other } },
    ];
    if (name === 'WRITE USAGE') cases.push({ what: 'with usage event 09 (undefined)', flags: ['MalformedTlv'], sw: '6A80', mutation: { fields: 'unknown-event' } });
    for (const c of cases) {
      const a = t();
      const steps: Step[] = [load(a)];
      if (c.other) {
        // A session opened by the NOBODY operator's key on its own ticket, used on a TST ticket.
        const n = t({ operator: 'NOBODY' });
        steps.push(load(n), sv(n, '9000', { key: 'operator-nobody' }));
      } else steps.push(...(c.prep ? c.prep(a) : [sv(a)]));
      steps.push(maced(name, a, c.sw, { mutation: c.mutation }));
      // The refusal changed nothing: a correct command in a new session succeeds.
      steps.push(sv(a), maced(name, a, '9000'));
      b.test(`${name} P1=01 ${c.what}`, ['SymGate', ...c.flags], 'invalid', steps);
    }
    {
      const a = t();
      b.test(`${name} P1=01 replayed byte for byte after it succeeded`, ['SymGate', 'Replay', 'SessionLifetime'], 'invalid', [
        load(a),
        sv(a),
        maced(name, a, '9000', { receipt: { counter: 1 } }),
        maced(name, a, '6984', { mutation: { replay: true } }),
      ]);
      const c = t();
      b.test(`${name} P1=01 recorded, then replayed in the next session (its old RC)`, ['SymGate', 'Replay'], 'invalid', [
        load(c),
        sv(c),
        maced(name, c, '9104', { mutation: { counterDelta: 1 } }),
        sv(c),
        maced(name, c, '6984', { mutation: { replay: true } }),
      ]);
      const d = t();
      b.test(`${name} P1=01 recorded, then replayed with C7 patched to the new session's RC`, ['SymGate', 'Replay', 'SessionMac'], 'invalid', [
        load(d),
        sv(d),
        maced(name, d, '9104', { mutation: { counterDelta: 1 } }),
        sv(d),
        maced(name, d, '9106', { mutation: { replayPatched: true } }),
      ]);
      const e = t();
      b.test(`${name} P1=01 naming the RC of the session before`, ['SymGate', 'Replay', 'WrongChallenge'], 'invalid', [
        load(e),
        sv(e),
        sv(e),
        maced(name, e, '6984', { mutation: { challenge: 'previous' } }),
      ]);
      const f = t();
      b.test(`A second command in one session: WRITE USAGE, then ${name} P1=01`, ['SymGate', 'SessionLifetime'], 'invalid', [
        load(f),
        sv(f),
        maced('WRITE USAGE', f, '9000', { receipt: { counter: 1 } }),
        maced(name, f, '6984'),
      ]);
      const g = t();
      const h = t();
      b.test(`${name} P1=01 of a deleted ticket (session opened on another one)`, ['SymGate', 'VoidTicket', 'RELAY'], 'invalid', [
        load(g),
        load(h),
        sv(g),
        maced('DELETE', g, '9000', { receipt: { counter: 1 } }),
        sv(h),
        maced(name, g, '9107'),
      ]);
    }
  }
  return b.file([
    'Gate mode sym: the runner derives K_card from the TEST ONLY operator master key and the card serial, the session keys from its terminal challenge and the card RC, checks and opens B5, and MACs B6 chained on it; mutations make the negative vectors.',
    "The card must hold the test operator's diversified key (PUT KEY P1=05 at personalisation). Tickets keep operator TST; on reused cards the runner varies their TIDs per run.",
  ]);
}


/** A WRITE USAGE or DELETE sent with a short Le: 61XX and what fits; the step after it fetches the rest. */
function shortLe(step: Step, ne: number): Step {
  return { ...(step as SignedStep), ne, expect: expect(sw('61XX'), { length: ne }) } as Step;
}

function threats(k: TestKeys): VectorFile {
  const b = new FileBuilder('threats', k);
  const pv = (ticket: string, st = '9000', extra: Partial<VerifyStep> & { sameLengthAs?: string } = {}) => verifyT('pki', ticket, st, extra);

  b.group('RELAY (issue 10, item 1): a device between gate and card substitutes the view; the card writes only for the view it showed (9107), and nothing else changes');
  {
    const a = b.ticket('R1');
    b.test('WRITE USAGE whose DF21 is the digest of another view than the card showed: 9107; the ticket is unchanged, the genuine command then passes', ['RELAY'], 'invalid', [
      load(a),
      verifyTid(b, a),
      use(a, EV.ENTRY, '9107', { mutation: { viewDigest: 'flip-bit' } }),
      verifyTid(b, a, { usage: { counter: 0, state: ST.NEW } }),
      use(a, EV.ENTRY, '9000', {}, { counter: 1 }),
    ]);
    const d = b.ticket('R2');
    b.test('DELETE whose DF21 is not the digest of the view the card showed: 9107, the ticket stays', ['RELAY'], 'invalid', [
      load(d),
      verifyTid(b, d),
      del(d, '9107', { mutation: { viewDigest: 'flip-bit' } }),
      verifyTid(b, d, { usage: { counter: 0 } }),
      del(d, '9000', {}, 1),
    ]);
    const x = b.ticket('R3');
    const y = b.ticket('R4');
    b.test('WRITE USAGE for another ticket than the one the view showed (the view of R3, the command for R4): 9107', ['RELAY'], 'invalid', [
      load(x),
      load(y),
      verifyTid(b, x),
      use(x, EV.PUNCH, '9107', { mutation: { otherTicket: y } }),
      verifyTid(b, y, { usage: { counter: 0 } }),
      use(y, EV.PUNCH, '9000', {}, { counter: 1 }),
    ]);
    const z = b.ticket('R5');
    const ch = challengeFor(b.nextTcId);
    b.test('A view that showed no ticket arms no command: WRITE USAGE after VERIFY of an unknown TID, 9107', ['RELAY', 'NotFound'], 'invalid', [
      load(z),
      VERIFY(0, verifyQuery(k, { challenge: ch, tid: 'NO-SUCH-RELAY' }), expect(sw('9000'), { check: viewCheck(undefined, ch, { card: true, status: 'not_found' }) })),
      use(z, EV.PUNCH, '9107'),
    ]);
  }

  b.group('CLONE (issue 10, item 2): a ticket seen elsewhere (face and TF_V) sealed to this card');
  {
    const a = b.ticket('C1');
    b.test('LOAD of a face bound to another card (94), with a valid TF_V, sealed to this card: 9102; the genuine ticket then loads', ['CLONE', 'OtherCard'], 'invalid', [
      { kind: 'load', ticket: a, mutation: { binding: 'other-card' }, expect: expect(sw('9102')) },
      load(a),
    ]);
    const v = b.ticket('C2');
    b.test('LOAD of an unbound version 1 face (no 94), validly signed: 6A80', ['CLONE', 'MalformedPayload'], 'invalid', [{ kind: 'load', ticket: v, mutation: { binding: 'version-1' }, expect: expect(sw('6A80')) }, load(v)]);
  }

  b.group('SHORT_LE (issue 10, item 5): a state-changing command asked with a short Le never loses its answer');
  {
    const a = b.ticket('L1');
    b.test('LOAD with Le=01: 61XX and one byte, GET RESPONSE the rest; the ticket was stored once (the same LOAD again: 6A89)', ['SHORT_LE', 'ResponseChaining'], 'valid', [
      { kind: 'load', ticket: a, ne: 1, expect: expect(sw('61XX'), { length: 1 }) },
      { kind: 'get-response', expect: expect(sw('9000'), { check: { kind: 'load-result', ticket: a } }) },
      load(a, '6A89', { reuse: true }),
    ]);
    const u = b.ticket('L2');
    b.test('WRITE USAGE with Le=01: 61XX, the receipt by GET RESPONSE; the counter moved once', ['SHORT_LE', 'ResponseChaining'], 'valid', [
      load(u),
      verifyTid(b, u),
      shortLe(use(u, EV.PUNCH, '9000'), 1),
      { kind: 'get-response', expect: expect(sw('9000'), { check: { kind: 'receipt', ticket: u, event: EV.PUNCH, counter: 1 } }) },
      verifyTid(b, u, { usage: { counter: 1, flags: 1 } }),
    ]);
    const d = b.ticket('L3');
    b.test('DELETE with Le=16: 61XX, the deletion receipt by GET RESPONSE; the ticket is void', ['SHORT_LE', 'ResponseChaining'], 'valid', [
      load(d),
      verifyTid(b, d),
      shortLe(del(d, '9000'), 16),
      { kind: 'get-response', expect: expect(sw('9000'), { check: { kind: 'receipt', ticket: d, event: EV.DELETED, counter: 1 } }) },
      verifyTid(b, d, { status: 'void' }),
    ]);
  }

  b.group('KEYLESS (issue 10, item 7): what a reader without keys learns, on a personalised card');
  {
    const open: [string, number][] = [['D1 suite', T.SUITE], ['D7 life cycle', T.LIFECYCLE], ['DA protocol version', T.PROTOCOL_VERSION]];
    const closed: [string, number][] = [
      ['C6 card serial', T.CARD_SERIAL],
      ['D3 encryption public key', T.CARD_ENCRYPTION_PUBLIC_KEY],
      ['D4 signing public key', T.CARD_SIGNING_PUBLIC_KEY],
      ['D5 encryption certificate', T.CARD_ENCRYPTION_CERTIFICATE],
      ['D6 signing certificate', T.CARD_SIGNING_CERTIFICATE],
      ['D8 capacity', T.CAPACITY],
      ['D9 installed keys', T.INSTALLED_KEYS],
      ['DB identity', T.CARD_IDENTITY],
    ];
    for (const [what, tag] of closed) b.test(`GET DATA ${what} without EXTERNAL AUTHENTICATE: 6982, whatever the card holds`, ['KEYLESS', 'GetData'], 'invalid', [apdu(getData(tag), expect(sw('6982')))]);
    b.test('GET DATA D1, D7, DA stay open: that it is an e-ticket card, its suite and version', ['KEYLESS', 'GetData'], 'valid', open.map(([, tag]) => apdu(getData(tag), expect(sw('9000'), { length: 1 }))));
    b.test('EXTERNAL AUTHENTICATE opens GET DATA C6; a new SELECT closes it again', ['KEYLESS', 'IssuerAuth'], 'valid', [
      AUTHENTICATE,
      apdu(getData(T.CARD_SERIAL), expect(sw('9000'), { length: 8 })),
      apdu(SELECT_NO_FCI, expect(sw('9000'))),
      apdu(getData(T.CARD_SERIAL), expect(sw('6982'))),
    ]);
    const f = b.ticket('K1', { serviceDate: 20260315, train: 'KL1' });
    const gone = b.ticket('K2');
    b.test('VERIFY answers alike (9000, one length) for a ticket found, a TID never held, a deleted TID and a date with no ticket', ['KEYLESS', 'NotFound', 'VoidTicket'], 'valid', [
      load(f),
      load(gone),
      verifyTid(b, gone),
      del(gone, '9000', {}, 1),
      verifyTid(b, f, { sameLengthAs: 'verify' }),
      VERIFY(0, verifyQuery(k, { challenge: challengeFor(21), tid: 'NO-SUCH-KEYLESS' }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(21), { card: true, status: 'not_found' }), sameLengthAs: 'verify' })),
      verifyTid(b, gone, { status: 'void', sameLengthAs: 'verify' }),
      VERIFY(0, verifyQuery(k, { challenge: challengeFor(22), date: 20991231, train: 'KL1' }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(22), { card: true, status: 'not_found' }), sameLengthAs: 'verify' })),
      VERIFY(0, verifyQuery(k, { challenge: challengeFor(23), date: 20260315, train: 'KL1' }), expect(sw('9000'), { check: viewCheck(f, challengeFor(23), { card: true }), sameLengthAs: 'verify' })),
    ]);
    const g = b.ticket('K3');
    b.test('VERIFY P1=01 (TF_V asked): found and not found answers alike too (the TF_V slot is padded when absent)', ['KEYLESS', 'NotFound'], 'valid', [
      load(g),
      verifyTid(b, g, { tfv: true, sameLengthAs: 'audit' }),
      VERIFY(1, verifyQuery(k, { challenge: challengeFor(24), tid: 'NO-SUCH-AUDIT' }), expect(sw('9000'), { check: viewCheck(undefined, challengeFor(24), { card: true, tfv: true, status: 'not_found' }), sameLengthAs: 'audit' })),
    ]);
    const h = b.ticket('K4');
    b.test('WRITE USAGE with no view pending: 6984 before any lookup, for a ticket the card holds or not', ['KEYLESS', 'WrongChallenge'], 'invalid', [
      load(h),
      use(h, EV.PUNCH, '6984'),
      use(h, EV.PUNCH, '6984', { mutation: { tid: 'NO-SUCH-KEYLESS' } }),
      del(h, '6984', { mutation: { tid: 'NO-SUCH-KEYLESS' } }),
    ]);
  }

  b.group('EXTERNAL AUTHENTICATE (issuer authorisation): every refusal in order', {});
  b.test('EXTERNAL AUTHENTICATE without GET CHALLENGE: 6984', ['IssuerAuth'], 'invalid', [{ kind: 'authenticate', mutation: { noChallenge: true }, expect: expect(sw('6984')) }, apdu(getData(T.CARD_SERIAL), expect(sw('6982')))]);
  b.test('A refused authorisation spends the challenge: 9106 (signature bit flipped), then 6984 for a retry on it', ['IssuerAuth', 'Replay'], 'invalid', [
    { kind: 'authenticate', mutation: { flipSignatureBit: 3 }, expect: expect(sw('9106')) },
    { kind: 'authenticate', mutation: { noChallenge: true }, expect: expect(sw('6984')) },
    apdu(getData(T.CARD_SERIAL), expect(sw('6982'))),
  ]);
  b.test('EXTERNAL AUTHENTICATE signed by an authority key the card does not hold: 6A88', ['IssuerAuth', 'UnknownAuthority'], 'invalid', [{ kind: 'authenticate', mutation: { authority: 'authority-other' }, expect: expect(sw('6A88')) }]);
  b.test('EXTERNAL AUTHENTICATE truncated by one byte: 6A80', ['IssuerAuth', 'TruncatedTlv'], 'invalid', [{ kind: 'authenticate', mutation: { truncated: true }, expect: expect(sw('6A80')) }]);
  b.test('EXTERNAL AUTHENTICATE with C1 only (no signature): 6A80', ['IssuerAuth', 'MalformedTlv'], 'invalid', [GET_CHALLENGE, apdu(cmd(0x80, 0x82, 0x00, 0x00, tlv(T.KEY_ID, k.authorities.get('authority')!.keyId)), expect(sw('6A80')))]);

  b.group('LIMITS (issue 10, item 8): a usage counter at its end and a full ticket table (state set directly on an emulated image)', { presets: true, capacity: 4 * 1024 * 1024 });
  {
    const a = b.ticket('M1');
    const last = LIMITS.maxUsageEvents;
    b.test(`WRITE USAGE at counter ${last - 1} passes, at ${last} is refused (6985, counter exhausted); DELETE still works`, ['LIMITS', 'UsageState'], 'invalid', [
      load(a),
      { kind: 'preset', what: 'usage-counter', ticket: a, counter: last - 1 },
      verifyTid(b, a, { usage: { counter: last - 1 } }),
      use(a, EV.PUNCH, '9000', {}, { counter: last }),
      verifyTid(b, a, { usage: { counter: last } }),
      use(a, EV.PUNCH, '6985'),
      verifyTid(b, a, { usage: { counter: last } }),
      del(a, '9000', {}, last + 1),
    ]);
    const t1 = b.ticket('M2');
    const t2 = b.ticket('M3');
    b.test(`A card holding limits.maxTickets (${LIMITS.maxTickets}) tickets answers LOAD 6A84 at once; after a DELETE the LOAD fits`, ['LIMITS', 'CardFull'], 'invalid', [
      load(t1),
      { kind: 'preset', what: 'ticket-table', count: LIMITS.maxTickets },
      load(t2, '6A84'),
      verifyTid(b, t1),
      del(t1, '9000', {}, 1),
      load(t2),
    ]);
  }

  return b.file([
    'The attack classes protocol version 2 closes (issue 10): a relay substituting the view (RELAY), a ticket copied to another card (CLONE), a short Le on state-changing commands (SHORT_LE), keyless probing (KEYLESS), issuer authentication, and the limits (LIMITS).',
    'The runner signs commands over the challenge and digest of the view the card showed; mutations substitute them.',
  ]);
}

function symThreats(k: TestKeys): VectorFile {
  const b = new FileBuilder('sym-threats', k);
  b.group('Gate mode sym: RELAY, SHORT_LE and KEYLESS, MACs computed by the runner from the TEST ONLY operator master key', { operatorBound: true });
  const sv = (ticket: string, st = '9000', extra: Partial<VerifyStep> & { sameLengthAs?: string } = {}) => verifyT('sym', ticket, st, extra);
  {
    const a = b.ticket('Y1');
    const c = b.ticket('Y2');
    b.test('WRITE USAGE P1=01 for another ticket than the session showed: 9107, then the genuine command passes', ['SymGate', 'RELAY'], 'invalid', [
      load(a),
      load(c),
      sv(a),
      maced('WRITE USAGE', a, '9107', { mutation: { otherTicket: c } }),
      sv(c, '9000', { usage: { counter: 0 } }),
      maced('WRITE USAGE', c, '9000', { receipt: { counter: 1 } }),
    ]);
    const z = b.ticket('Y3');
    b.test('A session that showed no ticket arms no command: 9107', ['SymGate', 'RELAY', 'NotFound'], 'invalid', [load(z), sv(z, '9000', { tid: 'NO-SUCH-SYM', status: 'not_found' }), maced('WRITE USAGE', z, '9107')]);
    const s1 = b.ticket('Y4');
    b.test('WRITE USAGE P1=01 with Le=01: 61XX, the MAC receipt by GET RESPONSE', ['SymGate', 'SHORT_LE', 'ResponseChaining'], 'valid', [
      load(s1),
      sv(s1),
      { ...(maced('WRITE USAGE', s1, '9000') as MacedStep), ne: 1, expect: expect(sw('61XX'), { length: 1 }) },
      { kind: 'get-response', expect: expect(sw('9000'), { check: { kind: 'mac-receipt', ticket: s1, event: EV.PUNCH, counter: 1 } }) },
      sv(s1, '9000', { usage: { counter: 1 } }),
    ]);
    const f = b.ticket('Y5');
    const gone = b.ticket('Y6');
    b.test('Sym VERIFY answers alike (9000, one length, no serial in clear) for a ticket found, a TID never held and a deleted one', ['SymGate', 'KEYLESS', 'NotFound', 'VoidTicket'], 'valid', [
      load(f),
      load(gone),
      sv(gone),
      maced('DELETE', gone, '9000', { receipt: { counter: 1 } }),
      sv(f, '9000', { sameLengthAs: 'b5' }),
      sv(f, '9000', { tid: 'NO-SUCH-SYM', status: 'not_found', sameLengthAs: 'b5' }),
      sv(gone, '9000', { status: 'void', sameLengthAs: 'b5' }),
    ]);
    const h = b.ticket('Y7');
    b.test('WRITE USAGE P1=01 without a session: 6984 before any lookup, for a ticket the card holds or not', ['SymGate', 'KEYLESS', 'SessionLifetime'], 'invalid', [
      load(h),
      maced('WRITE USAGE', h, '6984'),
      maced('WRITE USAGE', h, '6984', { mutation: { tid: 'NO-SUCH-SYM' } }),
    ]);
  }
  return b.file(['Gate mode sym against the attack classes of issue 10: the session binds the ticket it showed (RELAY), receipts survive a short Le (SHORT_LE), answers of one length and a masked serial (KEYLESS).']);
}

function rotation(k: TestKeys): VectorFile {
  const b = new FileBuilder('rotation', k);
  b.group('ROTATION (issue 12, item 5): TF_V and issuer authorisations by signing keys the installed root certified (A4), on a card that has not seen later tickets', { freshCard: true });
  const signed = (ticket: string, st: string, signer: CertifiedSigner, extra: Partial<Extract<Step, { kind: 'load' }>> = {}): Step => ({
    kind: 'load',
    ticket,
    signer,
    ...extra,
    expect: expect(sw(st), st === '9000' ? { check: { kind: 'load-result', ticket } } : {}),
  });
  {
    const a = b.ticket('K1');
    b.test('A ticket signed by signing-1, its A4 from the installed root: accepted, and the A2 the card shows (P1=01) carries the A4', ['ROTATION', 'Functional'], 'valid', [
      signed(a, '9000', { key: 'signing-1' }),
      verifyTid(b, a, { tfv: true }),
    ]);
    const cases: [string, CertifiedSigner, string, string[]][] = [
      ['certified by a root the card does not hold', { key: 'signing-1', root: 'authority-other' }, '6A88', ['ROTATION', 'UnknownAuthority']],
      ['with a tampered certificate (its end moved after signing)', { key: 'signing-1', tamper: true }, '9101', ['ROTATION', 'ForgedTfv']],
      ['issued before its key\'s window', { key: 'signing-1', from: 10, until: 3600 }, '9101', ['ROTATION']],
      ['issued after its key\'s window', { key: 'signing-1', from: -3600, until: -10 }, '9101', ['ROTATION']],
      ['whose certificate is of another key than the one that signed', { key: 'signing-1', certifies: 'signing-2' }, '9101', ['ROTATION', 'ForgedTfv']],
      ['whose key is certified for another operator only', { key: 'signing-1', scopes: ['NOBODY'] }, '6A88', ['ROTATION', 'UnknownAuthority']],
    ];
    for (const [i, [what, signer, st, flags]] of cases.entries()) {
      const t = b.ticket(`X${i + 1}`);
      b.test(`A ticket ${what}: ${st}; the same ticket signed correctly then loads`, flags, 'invalid', [signed(t, st, signer), signed(t, '9000', { key: 'signing-1' })]);
    }
    const k1 = b.ticket('T1');
    const k2 = b.ticket('T2');
    const k3 = b.ticket('T3');
    const k4 = b.ticket('T4');
    b.test('Retirement: signing-1 (certified until T1 + 10 s) is accepted until the card accepts a ticket issued after that end (signing-2, T1 + 100 s); then signing-1 is refused even within its window (9101)', ['ROTATION'], 'invalid', [
      signed(k1, '9000', { key: 'signing-1', until: 10 }),
      signed(k2, '9000', { key: 'signing-1', until: 4 }, { issuedAfter: { ticket: k1, seconds: 6 } }),
      signed(k3, '9000', { key: 'signing-2' }, { issuedAfter: { ticket: k1, seconds: 100 } }),
      signed(k4, '9101', { key: 'signing-1', until: 5 }, { issuedAfter: { ticket: k1, seconds: 5 } }),
      signed(k4, '9000', { key: 'signing-2' }),
    ]);
  }
  b.test('EXTERNAL AUTHENTICATE by a certified key: accepted, then GET DATA C6', ['ROTATION', 'IssuerAuth'], 'valid', [{ kind: 'authenticate', mutation: { signer: { key: 'signing-1' } }, expect: expect(sw('9000')) }, apdu(getData(T.CARD_SERIAL), expect(sw('9000'), { length: 8 }))]);
  b.test('EXTERNAL AUTHENTICATE with a tampered certificate: 9101', ['ROTATION', 'IssuerAuth'], 'invalid', [{ kind: 'authenticate', mutation: { signer: { key: 'signing-1', tamper: true } }, expect: expect(sw('9101')) }, apdu(getData(T.CARD_SERIAL), expect(sw('6982')))]);
  b.test('EXTERNAL AUTHENTICATE with a certificate from a root the card does not hold: 6A88', ['ROTATION', 'IssuerAuth'], 'invalid', [{ kind: 'authenticate', mutation: { signer: { key: 'signing-1', root: 'authority-other' } }, expect: expect(sw('6A88')) }]);
  {
    const t = b.ticket('E1');
    b.test('EXTERNAL AUTHENTICATE by a key whose certificate ended before the newest ticket the card accepted: retired, 9101', ['ROTATION', 'IssuerAuth'], 'invalid', [
      load(t),
      { kind: 'authenticate', mutation: { signer: { key: 'signing-2', from: -7200, until: -3600 } }, expect: expect(sw('9101')) },
    ]);
  }
  return b.file([
    'Key rotation on the card (apdu-spec README 3.6): the card holds the authority root; the runner certifies the TEST ONLY signing keys with it (or with a root the card lacks) at run time, windows relative to each ticket\'s issue time.',
    'Needs a fresh card: the card\'s time is the newest issue time it accepted, and a card that saw later tickets rightly refuses keys that ended before them.',
  ]);
}

// ---- output -----------------------------------------------------------------------------------------

/** Areas in the order a blank card in a reader runs them (personalisation first). Add an area here. */
export const AREAS: [string, (k: TestKeys) => VectorFile][] = [
  ['personalisation', personalisation],
  ['framing', framing],
  ['load', loadArea],
  ['read-verify', readVerify],
  ['usage-delete', usageDelete],
  ['sym-gate', symGate],
  ['threats', threats],
  ['sym-threats', symThreats],
  ['rotation', rotation],
];

/** Suites with test keys (keys/profile-<suite>.json). */
export const VECTOR_SUITES = ['rsa', 'sm9'] as const;

export function fileName(suite: string, area: string): string {
  return `${suite}-${area}.json`;
}

export function generate(): Map<string, string> {
  const out = new Map<string, string>();
  for (const suite of VECTOR_SUITES) {
    const keys = loadTestKeys(suite);
    for (const [area, build] of AREAS) out.set(fileName(suite, area), JSON.stringify(stripUndefined(build(keys)), null, 1) + '\n');
  }
  return out;
}

function stripUndefined<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [name, text] of generate()) {
    writeFileSync(`${OUT_DIR}${name}`, text);
    const f = JSON.parse(text) as VectorFile;
    console.log(`${name}: ${f.numberOfTests} tests in ${f.testGroups.length} groups`);
  }
}
