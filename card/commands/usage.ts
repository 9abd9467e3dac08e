// WRITE USAGE and DELETE on the card (patent 641-643, 651-653): spend the pending challenge or session,
// authenticate the command (terminal signature or session MAC), then apply it to the ticket and answer a receipt.

import { constantTimeEqual, equal } from '../../sdk/bytes.js';
import { checkUsageCommandMac, decodeUsageCommand, USAGE_P1, usageSignatureMessage, type UsageCommandFields, type UsageCommandName } from '../../sdk/commands/usage-command.js';
import { decodeTerminalKey } from '../../sdk/crypto/bundle.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { encodeReceipt, encodeReceiptBody, receiptMac, receiptSignatureMessage, signedReceiptPart } from '../../sdk/receipt.js';
import { LIMITS, SW } from '../../sdk/spec.js';
import { ticketDigest, tidDigest } from '../state.js';
import { refuse, type CardContext, type CommandHandler, type SymSession } from './context.js';
import { cardSigner, scopeAllows, terminalKey } from './keys.js';
import { nextUsage } from './usage-state.js';

/** The handler of WRITE USAGE or DELETE: P1=00 gate mode pki (B3), P1=01 sym (B6). */
export function usageHandler(name: UsageCommandName): CommandHandler {
  return (ctx, apdu) => {
    // The pending challenge and session are spent by any attempt, so a refused command cannot be retried.
    const pending = { challenge: ctx.ram.challenge, session: ctx.ram.session };
    ctx.ram.challenge = null;
    ctx.ram.session = null;
    return apdu.p1 === USAGE_P1.sym ? symCommand(ctx, name, apdu.data, pending.session) : pkiCommand(ctx, name, apdu.data, pending.challenge);
  };
}

/** Gate mode pki: format, terminal key (6982), its signature (9106), the challenge (6984), then the ticket. */
function pkiCommand(ctx: CardContext, name: UsageCommandName, data: Uint8Array, challenge: Uint8Array | null): Uint8Array {
  const s = ctx.state;
  const { fields, body, authenticator } = decodeUsageCommand(name, 'pki', data);
  const terminal = terminalKey(s, fields.keyId!);
  if (!suiteProvider(s.suite).suite.verify(decodeTerminalKey(terminal.key).signature, usageSignatureMessage(name, s.serial, body), authenticator)) {
    refuse(SW.COMMAND_SIGNATURE_INVALID);
  }
  if (!challenge || !constantTimeEqual(challenge, fields.cardChallenge)) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'challenge missing or spent');
  const signed = signedReceiptPart(apply(ctx, name, fields, (op) => scopeAllows(terminal, op)), data);
  return encodeReceipt(signed, { signature: cardSigner(s).sign(receiptSignatureMessage(signed)) });
}

/** Gate mode sym: the session MAC, chained on the VERIFY answer, authenticates the terminal and the command. */
function symCommand(ctx: CardContext, name: UsageCommandName, data: Uint8Array, session: SymSession | null): Uint8Array {
  const { fields, body, authenticator: mac } = decodeUsageCommand(name, 'sym', data);
  if (!session || !constantTimeEqual(session.cardChallenge, fields.cardChallenge)) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'no session, or another session');
  if (!checkUsageCommandMac(session.macKey, mac, session.chain, name, ctx.state.serial, body)) refuse(SW.COMMAND_SIGNATURE_INVALID);
  const receipt = apply(ctx, name, fields, (op) => op === session.key.operator);
  return encodeReceipt(receipt, { mac: receiptMac(session.macKey, mac, receipt) });
}

/** The authenticated part: find the ticket, check the counter and the state, commit; the receipt body out. */
function apply(ctx: CardContext, name: UsageCommandName, f: UsageCommandFields & { event: number }, allowed: (operator: string) => boolean): Uint8Array {
  const s = ctx.state;
  const record = s.tickets.find((t) => t.tid === f.tid && allowed(t.operator));
  if (!record) {
    if (s.tickets.some((t) => t.tid === f.tid)) refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'terminal not authorised for this operator');
    if (s.tombstones.some((t) => equal(t.tidDigest, tidDigest(f.tid)))) refuse(SW.TICKET_VOID);
    refuse(SW.RECORD_NOT_FOUND);
  }
  if (f.counter !== record.usage.counter) refuse(SW.COUNTER_MISMATCH);
  if (f.counter === 0xffff) refuse(SW.CONDITIONS_NOT_SATISFIED, 'counter exhausted');
  if (name === 'DELETE') {
    const tombstones = [...s.tombstones, { ticketDigest: ticketDigest(record.operator, record.tid), tidDigest: tidDigest(record.tid), issuedAt: record.issuedAt }];
    let floor = s.tombstoneFloor;
    while (tombstones.length > LIMITS.tombstoneSlots) floor = Math.max(floor, tombstones.shift()!.issuedAt);
    ctx.commit({ ...s, tickets: s.tickets.filter((t) => t !== record), tombstones, tombstoneFloor: floor });
    return encodeReceiptBody({ cardSerial: s.serial, tid: f.tid, event: f.event, counter: f.counter + 1 });
  }
  const usage = nextUsage(record.usage, record.maxEntries, { event: f.event, gate: f.gateId, station: f.station, time: f.time }) ?? refuse(SW.CONDITIONS_NOT_SATISFIED, 'event not allowed in this state');
  ctx.commit({ ...s, tickets: s.tickets.map((t) => (t === record ? { ...record, usage } : t)) });
  return encodeReceiptBody({ cardSerial: s.serial, tid: f.tid, event: f.event, counter: f.counter + 1, usage });
}
