// WRITE USAGE and DELETE (patent 641-643, 651-653) share one command: its field list, the B3 (gate mode
// pki) and B6 (sym) templates, and the exact bytes a terminal signs or MACs. write-usage.ts and delete.ts name them.

import { concat } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { checkSessionMac, sessionMac, SYM_CONTEXT } from '../crypto/symmetric.js';
import { decodeSequence, encodeSequenceField, specField, type SequenceField } from '../fields.js';
import { command, T } from '../spec.js';
import { SIGNATURE_CONTEXT } from '../ticket.js';
import { TlvError, TlvMap, template, tlv } from '../tlv.js';
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

/** The fields `name` carries in gate mode `mode`, in the order sent, before the authenticator. */
export function usageFieldList(name: UsageCommandName, mode: GateMode): readonly SequenceField<UsageKey>[] {
  return USAGE_FIELDS.filter((f) => (f.mode === undefined || f.mode === mode) && (f.only === undefined || f.only === name));
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

/** The authenticated part of B3 / B6: every field before 9E / 8E. */
export function encodeUsageBody(name: UsageCommandName, mode: GateMode, v: UsageCommandFields): Uint8Array {
  return concat(...usageFieldItems(name, mode, v));
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
  const content = TlvMap.parse(data, { allowed: [TEMPLATE[mode]] }).require(TEMPLATE[mode]);
  const list = [...usageFieldList(name, mode), AUTHENTICATOR[mode]];
  const { values, ends } = decodeSequence(list, content, `${name} command`);
  const { authenticator, ...rest } = values as Record<string, unknown>;
  const event = name === 'DELETE' ? DELETION_EVENT : (rest.event as number);
  if (name === 'WRITE USAGE' && !WRITABLE_EVENTS.includes(event)) throw new TlvError(`unknown usage event ${event}`);
  return {
    fields: { ...rest, event } as DecodedUsageCommand['fields'],
    body: content.subarray(0, ends[ends.length - 2]),
    authenticator: authenticator as Uint8Array,
  };
}
