// WRITE USAGE and DELETE (patent 641-643, 651-653) share one command: its field list, the B3 (gate mode
// pki) and B6 (sym) templates, and the exact bytes a terminal signs or MACs. write-usage.ts and delete.ts name them.

import { concat } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { checkSessionMac, sessionMac, SYM_CONTEXT } from '../crypto/symmetric.js';
import { decodeSequence, encodeSequence, encodeSequenceField, specField, type SequenceField } from '../fields.js';
import { command, T } from '../spec.js';
import { SIGNATURE_CONTEXT } from '../ticket.js';
import { readTlv, TlvError, TlvMap, template, tlv } from '../tlv.js';
import { DELETION_EVENT } from './delete.js';
import { WRITABLE_EVENTS } from './write-usage.js';

export type UsageCommandName = 'WRITE USAGE' | 'DELETE';
/** Gate mode: `pki` (keys 4/5, card-signed receipts) or `sym` (diversified AES keys, MAC receipts only the operator can check). */
export type GateMode = 'pki' | 'sym';

/** P1 of WRITE USAGE and DELETE names the gate mode (and so the template: B3 or B6). */
export const USAGE_P1: Readonly<Record<GateMode, number>> = { pki: 0x00, sym: 0x01 };

/** What a terminal writes to a ticket (or deletes it with), as the card checks it. */
export interface UsageCommandFields {
  /** Gate mode pki only: C1, the id of the terminal key bundle that signs. */
  keyId?: Uint8Array;
  /** C7: the card challenge (pki) or the session's RC (sym) this command spends. */
  cardChallenge: Uint8Array;
  tid: string;
  /** The ticket's counter as the terminal read it; the card refuses any other (9104). */
  counter: number;
  /** WRITE USAGE only (usageEvents of the spec). */
  event?: number;
  gateId: string;
  station: string;
  /** Terminal clock, epoch seconds. */
  time: number;
  /**
   * Gate mode pki only: DF21, SHA-256 of the ticket view B2 the gate decided on, as it received it. The card
   * writes only if it showed exactly that view (else 9107): a device between gate and card cannot substitute it.
   */
  viewDigest?: Uint8Array;
}

type UsageKey = keyof UsageCommandFields;

interface UsageField extends SequenceField<UsageKey> {
  /** Only in this gate mode's template (absent: both). */
  mode?: GateMode;
  /** Only in this command (absent: both). */
  only?: UsageCommandName;
}

/**
 * The one list of what B3 and B6 carry, in the order sent (apdu-spec README 3.3 and 3.5). A new field of
 * the protocol is one line here (and its data object in protocol.json): card, gates, back office and the
 * vector runner all encode, decode, sign and MAC from this list.
 */
const USAGE_FIELDS: readonly UsageField[] = [
  { ...specField('keyId', 'KEY_ID'), mode: 'pki' },
  specField('cardChallenge', 'CARD_CHALLENGE'),
  specField('tid', 'TID'),
  specField('counter', 'COUNTER'),
  { ...specField('event', 'USAGE_EVENT'), only: 'WRITE USAGE' },
  specField('gateId', 'GATE_ID'),
  specField('station', 'STATION'),
  specField('time', 'TIME'),
  { ...specField('viewDigest', 'VIEW_DIGEST'), mode: 'pki' },
];

/** The authenticator that closes each template: the terminal's signature (B3) or the session MAC (B6). */
const AUTHENTICATOR: Readonly<Record<GateMode, SequenceField<'authenticator'>>> = {
  pki: specField('authenticator', 'SIGNATURE'),
  sym: specField('authenticator', 'MAC'),
};

const TEMPLATE: Readonly<Record<GateMode, number>> = { pki: T.SIGNED_COMMAND, sym: T.MACED_COMMAND };

/** Each command's field list by gate mode, without and with the authenticator: filtered once, not per command. */
function listsFor(mode: GateMode, name: UsageCommandName) {
  const fields = Object.freeze(USAGE_FIELDS.filter((f) => (f.mode === undefined || f.mode === mode) && (f.only === undefined || f.only === name)));
  return { fields, withAuthenticator: Object.freeze([...fields, AUTHENTICATOR[mode]]) as readonly SequenceField<string>[] };
}

const LISTS = {
  pki: { 'WRITE USAGE': listsFor('pki', 'WRITE USAGE'), DELETE: listsFor('pki', 'DELETE') },
  sym: { 'WRITE USAGE': listsFor('sym', 'WRITE USAGE'), DELETE: listsFor('sym', 'DELETE') },
} as const;

function lists(name: UsageCommandName, mode: GateMode) {
  // A name or mode from outside the types (a logged record read back) gets its list filtered as before.
  return (LISTS[mode] as Record<string, ReturnType<typeof listsFor>> | undefined)?.[name] ?? listsFor(mode, name);
}

/** The fields `name` carries in gate mode `mode`, in the order sent, before the authenticator. */
export function usageFieldList(name: UsageCommandName, mode: GateMode): readonly SequenceField<UsageKey>[] {
  return lists(name, mode).fields;
}

/**
 * Each field as its TLV, in order. The body a terminal authenticates is their concatenation; the vector
 * runner reorders or drops items to build malformed commands from the same list.
 */
export function usageFieldItems(name: UsageCommandName, mode: GateMode, v: UsageCommandFields): Uint8Array[] {
  return usageFieldList(name, mode).map((f) => {
    const value = v[f.key];
    if (value === undefined) throw new InvalidInputError(`${name} in gate mode ${mode} needs ${f.key}`);
    return encodeSequenceField(f, value);
  });
}

/** The authenticated part of B3 / B6: every field before 9E / 8E (the bytes of concat(...usageFieldItems(...)), in one buffer). */
export function encodeUsageBody(name: UsageCommandName, mode: GateMode, v: UsageCommandFields): Uint8Array {
  return encodeSequence(usageFieldList(name, mode), v, (f) => new InvalidInputError(`${name} in gate mode ${mode} needs ${f.key}`));
}

/** B3 { body, 9E signature } (pki) or B6 { body, 8E MAC } (sym). */
export function encodeUsageCommand(mode: GateMode, body: Uint8Array, authenticator: Uint8Array): Uint8Array {
  return template(TEMPLATE[mode], body, tlv(AUTHENTICATOR[mode].tag, authenticator));
}

/** Pki: what the terminal signs with key 5, "ETKT CMD 2" ‖ INS ‖ serial ‖ C1 … DF21 (apdu-spec README 3.3). INS and serial bind it to one command and one card. */
export function usageSignatureMessage(name: UsageCommandName, serial: Uint8Array, body: Uint8Array): Uint8Array {
  return concat(SIGNATURE_CONTEXT.COMMAND, new Uint8Array([command(name).insByte]), serial, body);
}

/** Sym: MAC_c over INS ‖ serial ‖ body, chained on the VERIFY answer's MAC (apdu-spec README 3.5). */
export function usageCommandMac(macKey: Uint8Array, viewMac: Uint8Array, name: UsageCommandName, serial: Uint8Array, body: Uint8Array): Uint8Array {
  return sessionMac(macKey, SYM_CONTEXT.COMMAND, viewMac, new Uint8Array([command(name).insByte]), serial, body);
}

export function checkUsageCommandMac(macKey: Uint8Array, mac: Uint8Array, viewMac: Uint8Array, name: UsageCommandName, serial: Uint8Array, body: Uint8Array): boolean {
  return checkSessionMac(macKey, mac, SYM_CONTEXT.COMMAND, viewMac, new Uint8Array([command(name).insByte]), serial, body);
}

export interface DecodedUsageCommand {
  fields: UsageCommandFields & { event: number };
  /** The authenticated bytes: the template's content before the authenticator, exactly as sent. */
  body: Uint8Array;
  /** The terminal's signature (pki) or session MAC (sym). */
  authenticator: Uint8Array;
}

/**
 * Strict decoding of a WRITE USAGE / DELETE command (the card's side, and the back office re-checking a
 * logged sym command): exactly the fields of the list, in order, each within its spec length. A DELETE
 * carries event DELETED. Throws TlvError (6A80) for anything else.
 */
export function decodeUsageCommand(name: UsageCommandName, mode: GateMode, data: Uint8Array): DecodedUsageCommand {
  // The template alone fills the data (else TlvMap says what is wrong: another tag, a second object, malformed).
  const tag = TEMPLATE[mode];
  let content: Uint8Array | undefined;
  if (data.length > 0) {
    const outer = readTlv(data, 0, { tag: 0, start: 0, end: 0 });
    if (outer.tag === tag && outer.end === data.length) content = data.subarray(outer.start, outer.end);
  }
  content ??= TlvMap.parse(data, { allowed: [tag] }).require(tag);
  const { values: v, ends } = decodeSequence(lists(name, mode).withAuthenticator, content, `${name} command`);
  const event = name === 'DELETE' ? DELETION_EVENT : (v.event as number);
  if (name === 'WRITE USAGE' && !WRITABLE_EVENTS.includes(event)) throw new TlvError(`unknown usage event ${event}`);
  // One literal per gate mode with the fields that mode carries (a rest and a spread of the decoded object took V8's slow path).
  const fields: DecodedUsageCommand['fields'] =
    mode === 'pki'
      ? { keyId: v.keyId as Uint8Array, cardChallenge: v.cardChallenge as Uint8Array, tid: v.tid as string, counter: v.counter as number, event, gateId: v.gateId as string, station: v.station as string, time: v.time as number, viewDigest: v.viewDigest as Uint8Array }
      : { cardChallenge: v.cardChallenge as Uint8Array, tid: v.tid as string, counter: v.counter as number, event, gateId: v.gateId as string, station: v.station as string, time: v.time as number };
  return {
    fields,
    body: content.subarray(0, ends[ends.length - 2]),
    authenticator: v.authenticator as Uint8Array,
  };
}
