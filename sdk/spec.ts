// The normative protocol (apdu-spec/protocol.json) as typed constants for the card, host and vectors.
// Code names status words, commands and tags by their spec names; a name the spec lacks fails at load.

import { createRequire } from 'node:module';
import { fromHex } from './bytes.js';

const require = createRequire(import.meta.url);
// JSON is read at run time so that the spec file, not a copy, is what the code obeys.
export const protocol = require('../apdu-spec/protocol.json') as ProtocolSpec;

export interface SpecField {
  tag: string;
  name: string;
  format: 'uint' | 'text' | 'bytes' | 'date' | 'time' | 'template';
  length?: string;
  required?: boolean;
  description: string;
}

export interface SpecCommand {
  name: string;
  cla: string;
  ins: string;
  p1: string[];
  p2: string[];
  case: string;
  lifecycle: 'any' | 'PERSONALIZING' | 'OPERATIONAL';
  chaining: boolean;
  requiresSelection: boolean;
  data: string;
  response: string;
  statusWords: string[];
}

export interface ProtocolSpec {
  protocol: string;
  version: number;
  aid: string;
  atr: { hex: string; description: string };
  limits: Record<
    | 'maxCommandData'
    | 'maxChainedData'
    | 'shortResponseChunk'
    | 'maxResponseData'
    | 'maxGetResponseRounds'
    | 'challengeLength'
    | 'terminalChallengeLength'
    | 'maxAuthorityKeys'
    | 'maxTerminalKeys'
    | 'maxSymmetricKeys'
    | 'symmetricMacLength'
    | 'tombstoneSlots'
    | 'defaultCapacity'
    | 'maxTickets'
    | 'maxUsageEvents'
    | 'viewLength'
    | 'verificationCodeSlot',
    number
  >;
  suites: { id: number; name: string; description: string }[];
  lifecycle: { value: number; name: string; description: string }[];
  statusWords: { sw: string; name: string; description: string }[];
  commonStatusWords: string[];
  commands: SpecCommand[];
  usageEvents: { value: number; name: string; description: string }[];
  usageStates: { value: number; name: string }[];
  dataObjects: SpecField[];
  ticketFace: SpecField[];
  sealedEnvelope: SpecField[];
  verificationCode: SpecField[];
  terminalKeyBundle: SpecField[];
  usageRecord: SpecField[];
}

function byName<T extends { name: string }>(items: T[], what: string): (name: string) => T {
  const map = new Map(items.map((i) => [i.name, i]));
  return (name: string) => {
    const v = map.get(name);
    if (!v) throw new Error(`apdu-spec has no ${what} named ${name}`);
    return v;
  };
}

const swByName = byName(protocol.statusWords, 'status word');
const tagByName = byName(protocol.dataObjects, 'data object');
const commandByName = byName(protocol.commands, 'command');

/** Status word value by spec name. Patterns (61XX, 6CXX) give their base (0x6100, 0x6C00). */
function swValue(name: string): number {
  return parseInt(swByName(name).sw.replace(/X/g, '0'), 16);
}

/** Status words by their apdu-spec names (e.g. `SW.ALREADY_EXISTS` is 0x6A89). */
export const SW = {
  SUCCESS: swValue('SUCCESS'),
  BYTES_REMAINING: swValue('BYTES_REMAINING'),
  MEMORY_FAILURE: swValue('MEMORY_FAILURE'),
  WRONG_LENGTH: swValue('WRONG_LENGTH'),
  LOGICAL_CHANNEL_NOT_SUPPORTED: swValue('LOGICAL_CHANNEL_NOT_SUPPORTED'),
  SECURE_MESSAGING_NOT_SUPPORTED: swValue('SECURE_MESSAGING_NOT_SUPPORTED'),
  LAST_COMMAND_EXPECTED: swValue('LAST_COMMAND_EXPECTED'),
  CHAINING_NOT_SUPPORTED: swValue('CHAINING_NOT_SUPPORTED'),
  SECURITY_STATUS_NOT_SATISFIED: swValue('SECURITY_STATUS_NOT_SATISFIED'),
  REFERENCE_DATA_NOT_USABLE: swValue('REFERENCE_DATA_NOT_USABLE'),
  CONDITIONS_NOT_SATISFIED: swValue('CONDITIONS_NOT_SATISFIED'),
  COMMAND_NOT_ALLOWED: swValue('COMMAND_NOT_ALLOWED'),
  INCORRECT_SM_DATA_OBJECTS: swValue('INCORRECT_SM_DATA_OBJECTS'),
  INCORRECT_DATA: swValue('INCORRECT_DATA'),
  FILE_NOT_FOUND: swValue('FILE_NOT_FOUND'),
  NOT_ENOUGH_MEMORY: swValue('NOT_ENOUGH_MEMORY'),
  INCORRECT_P1P2: swValue('INCORRECT_P1P2'),
  REFERENCED_DATA_NOT_FOUND: swValue('REFERENCED_DATA_NOT_FOUND'),
  ALREADY_EXISTS: swValue('ALREADY_EXISTS'),
  WRONG_LE_EXACT: swValue('WRONG_LE_EXACT'),
  INS_NOT_SUPPORTED: swValue('INS_NOT_SUPPORTED'),
  CLA_NOT_SUPPORTED: swValue('CLA_NOT_SUPPORTED'),
  UNKNOWN_ERROR: swValue('UNKNOWN_ERROR'),
  TICKET_SIGNATURE_INVALID: swValue('TICKET_SIGNATURE_INVALID'),
  TICKET_NOT_FOR_THIS_CARD: swValue('TICKET_NOT_FOR_THIS_CARD'),
  TICKET_REPLAYED: swValue('TICKET_REPLAYED'),
  COUNTER_MISMATCH: swValue('COUNTER_MISMATCH'),
  COMMAND_SIGNATURE_INVALID: swValue('COMMAND_SIGNATURE_INVALID'),
  VIEW_MISMATCH: swValue('VIEW_MISMATCH'),
} as const;

/** Spec entry (name, description) of a status word, resolving the 61XX / 6CXX patterns. */
export function describeSw(sw: number): { name: string; description: string; pattern: string } {
  const exact = sw.toString(16).toUpperCase().padStart(4, '0');
  for (const s of protocol.statusWords) {
    if (s.sw === exact) return { name: s.name, description: s.description, pattern: s.sw };
  }
  const pat = exact.slice(0, 2) + 'XX';
  for (const s of protocol.statusWords) {
    if (s.sw === pat) return { name: s.name, description: s.description, pattern: s.sw };
  }
  return { name: 'UNDEFINED', description: 'status word not defined by apdu-spec', pattern: exact };
}

/** Is `sw` listed for the command (its own list or the common list, patterns included)? */
export function swAllowedFor(command: SpecCommand | undefined, sw: number): boolean {
  const list = [...(command?.statusWords ?? []), ...protocol.commonStatusWords];
  const exact = sw.toString(16).toUpperCase().padStart(4, '0');
  return list.includes(exact) || list.includes(exact.slice(0, 2) + 'XX');
}

function tagValue(name: string): number {
  return parseInt(tagByName(name).tag, 16);
}

// Resolve every tag the code uses now, so a renamed tag fails at import instead of at run time.
export const T = {
  FCI: tagValue('FCI'),
  DF_NAME: tagValue('DF_NAME'),
  FCI_PROPRIETARY: tagValue('FCI_PROPRIETARY'),
  SIGNATURE: tagValue('SIGNATURE'),
  TICKET_FACE: tagValue('TICKET_FACE'),
  VERIFICATION_CODE: tagValue('VERIFICATION_CODE'),
  USAGE_RECORD: tagValue('USAGE_RECORD'),
  SEALED: tagValue('SEALED'),
  TICKET_VIEW: tagValue('TICKET_VIEW'),
  SIGNED_COMMAND: tagValue('SIGNED_COMMAND'),
  RECEIPT: tagValue('RECEIPT'),
  SESSION_VIEW: tagValue('SESSION_VIEW'),
  MACED_COMMAND: tagValue('MACED_COMMAND'),
  MAC: tagValue('MAC'),
  SESSION_CRYPTOGRAM: tagValue('SESSION_CRYPTOGRAM'),
  KEY_ID: tagValue('KEY_ID'),
  SERVICE_DATE: tagValue('SERVICE_DATE'),
  TRAIN: tagValue('TRAIN'),
  TERMINAL_CHALLENGE: tagValue('TERMINAL_CHALLENGE'),
  TID: tagValue('TID'),
  CARD_SERIAL: tagValue('CARD_SERIAL'),
  CARD_CHALLENGE: tagValue('CARD_CHALLENGE'),
  SEQUENCE_NUMBER: tagValue('SEQUENCE_NUMBER'),
  OPERATOR_SCOPE: tagValue('OPERATOR_SCOPE'),
  COUNTER: tagValue('COUNTER'),
  USAGE_EVENT: tagValue('USAGE_EVENT'),
  GATE_ID: tagValue('GATE_ID'),
  STATION: tagValue('STATION'),
  TIME: tagValue('TIME'),
  COMMAND_DIGEST: tagValue('COMMAND_DIGEST'),
  KEY_MATERIAL: tagValue('KEY_MATERIAL'),
  SUITE: tagValue('SUITE'),
  CARD_ENCRYPTION_PUBLIC_KEY: tagValue('CARD_ENCRYPTION_PUBLIC_KEY'),
  CARD_SIGNING_PUBLIC_KEY: tagValue('CARD_SIGNING_PUBLIC_KEY'),
  CARD_ENCRYPTION_CERTIFICATE: tagValue('CARD_ENCRYPTION_CERTIFICATE'),
  CARD_SIGNING_CERTIFICATE: tagValue('CARD_SIGNING_CERTIFICATE'),
  LIFECYCLE: tagValue('LIFECYCLE'),
  CAPACITY: tagValue('CAPACITY'),
  INSTALLED_KEYS: tagValue('INSTALLED_KEYS'),
  PROTOCOL_VERSION: tagValue('PROTOCOL_VERSION'),
  CARD_IDENTITY: tagValue('CARD_IDENTITY'),
  KEY_CERTIFICATE: tagValue('KEY_CERTIFICATE'),
  VALID_FROM: tagValue('VALID_FROM'),
  VALID_UNTIL: tagValue('VALID_UNTIL'),
  CERTIFYING_KEY_ID: tagValue('CERTIFYING_KEY_ID'),
  FACE_DIGEST: tagValue('FACE_DIGEST'),
  VIEW_DIGEST: tagValue('VIEW_DIGEST'),
  VIEW_STATUS: tagValue('VIEW_STATUS'),
  PADDING: tagValue('PADDING'),
  MASKED_SERIAL: tagValue('MASKED_SERIAL'),
  PRIVACY_KEY: tagValue('PRIVACY_KEY'),
} as const;

/** Tags of a template's own fields (inside B1, A2, a terminal key bundle), by the names the spec gives them. */
function fieldTags<const N extends string>(table: SpecField[], what: string, names: readonly N[]): Record<N, number> {
  const out = {} as Record<N, number>;
  for (const n of names) {
    const f = table.find((x) => x.name === n);
    if (!f) throw new Error(`apdu-spec ${what} has no field named ${n}`);
    out[n] = parseInt(f.tag, 16);
  }
  return out;
}

/** Fields of the envelope B1 (first and second ciphertexts), in the order they are sent. */
export const ENVELOPE_FIELD = fieldTags(protocol.sealedEnvelope, 'sealedEnvelope', ['version', 'suite', 'recipient', 'encapsulation', 'iv', 'ciphertext', 'mac'] as const);
/** Fields of the verification code A2 (TF_V). */
export const TFV_FIELD = fieldTags(protocol.verificationCode, 'verificationCode', ['suite', 'authorityKeyId', 'signature', 'certificate'] as const);
/** Fields of a terminal key bundle (D0 of PUT KEY P1=02). */
export const BUNDLE_FIELD = fieldTags(protocol.terminalKeyBundle, 'terminalKeyBundle', ['encryption', 'signature'] as const);

export interface CommandDef extends SpecCommand {
  claByte: number;
  insByte: number;
}

// Looked up on every APDU by card and host: resolve each definition once.
const commandDefs = new Map<string, CommandDef>(
  protocol.commands.map((c) => [c.name, Object.freeze({ ...c, claByte: parseInt(c.cla, 16), insByte: parseInt(c.ins, 16) })]),
);
const commandsByClaIns = new Map<number, CommandDef>([...commandDefs.values()].map((c) => [(c.claByte << 8) | c.insByte, c]));

/** Command definition by spec name, with CLA/INS as numbers. */
export function command(name: string): CommandDef {
  return commandDefs.get(name) ?? (commandByName(name) as never);
}

export function commandForIns(cla: number, ins: number): CommandDef | undefined {
  return commandsByClaIns.get(((cla & 0xec) << 8) | ins); // strip chaining (0x10) and channel bits for the lookup
}

/** The e-ticket application identifier. */
export const AID = fromHex(protocol.aid);
export const ATR = fromHex(protocol.atr.hex);
/** The protocol's limits (apdu-spec/protocol.json `limits`): ticket table, usage events, view lengths, chaining, challenge. */
export const LIMITS = protocol.limits;

function valueOf(list: { value: number; name: string }[], name: string): number {
  const v = list.find((i) => i.name === name);
  if (!v) throw new Error(`apdu-spec has no value named ${name}`);
  return v.value;
}

export const LIFECYCLE = {
  PERSONALIZING: valueOf(protocol.lifecycle, 'PERSONALIZING'),
  OPERATIONAL: valueOf(protocol.lifecycle, 'OPERATIONAL'),
} as const;

/** WRITE USAGE events by name (ENTRY, EXIT, TEMPORARY_EXIT, PUNCH, PAPER_PRINTED). */
export const USAGE_EVENT = {
  ENTRY: valueOf(protocol.usageEvents, 'ENTRY'),
  TEMPORARY_EXIT: valueOf(protocol.usageEvents, 'TEMPORARY_EXIT'),
  EXIT: valueOf(protocol.usageEvents, 'EXIT'),
  PUNCH: valueOf(protocol.usageEvents, 'PUNCH'),
  PAPER_PRINTED: valueOf(protocol.usageEvents, 'PAPER_PRINTED'),
  DELETED: valueOf(protocol.usageEvents, 'DELETED'),
} as const;

/** Usage states of a ticket by name (e.g. INSIDE after an entry). */
export const USAGE_STATE = {
  NEW: valueOf(protocol.usageStates, 'NEW'),
  INSIDE: valueOf(protocol.usageStates, 'INSIDE'),
  TEMPORARY_EXIT: valueOf(protocol.usageStates, 'TEMPORARY_EXIT'),
  EXITED: valueOf(protocol.usageStates, 'EXITED'),
} as const;

export const SUITE = {
  rsa: protocol.suites.find((s) => s.name === 'rsa')!.id,
  sm9: protocol.suites.find((s) => s.name === 'sm9')!.id,
} as const;
/** A crypto suite: `rsa` or `sm9`. */
export type SuiteName = keyof typeof SUITE;
