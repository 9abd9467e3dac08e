// WRITE USAGE and DELETE on the card (patent 641-643, 651-653): spend the pending view or session, authenticate
// the command (terminal signature or session MAC), check it answers exactly the view this card showed (9107),
// then apply it to that ticket and answer a receipt naming the face it applies to.

import { constantTimeEqual } from '../../sdk/bytes.js';
import { checkUsageCommandMac, decodeUsageCommand, USAGE_P1, usageSignatureMessage, type UsageCommandFields, type UsageCommandName } from '../../sdk/commands/usage-command.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { encodeReceipt, encodeReceiptBody, receiptMac, receiptSignatureMessage, signedReceiptPart } from '../../sdk/receipt.js';
import { LIMITS, SW } from '../../sdk/spec.js';
import { faceDigestOf } from '../../sdk/ticket.js';
import { encodedUsage, ticketDigest, tidDigest, type TicketRecord } from '../state.js';
import { refuse, type CardContext, type CommandHandler, type ShownView, type SymSession } from './context.js';
import { cardSigner, scopeAllows, terminalKey, terminalPublicKey } from './keys.js';
import { nextUsage } from './usage-state.js';

/** The handler of WRITE USAGE or DELETE: P1=00 gate mode pki (B3), P1=01 sym (B6). */
export function usageHandler(name: UsageCommandName): CommandHandler {
  return (ctx, apdu) => {
    // The pending view and session are spent by any attempt, so a refused command cannot be retried.
    const pending = { shown: ctx.ram.shown, session: ctx.ram.session };
    ctx.ram.shown = null;
    ctx.ram.session = null;
    return apdu.p1 === USAGE_P1.sym ? symCommand(ctx, name, apdu.data, pending.session) : pkiCommand(ctx, name, apdu.data, pending.shown);
  };
}

/** The ticket the pending view showed (none when it showed no ticket). */
function shownTicket(ctx: CardContext, seq: number): TicketRecord | undefined {
  return seq === 0 ? undefined : ctx.state.tickets.find((t) => t.seq === seq);
}

/**
 * Gate mode pki: format 6A80, terminal key 6982, its signature 9106, a view pending with this challenge 6984,
 * the shown ticket and view 9107; then operator, counter and state. Nothing is looked up before 6984.
 */
function pkiCommand(ctx: CardContext, name: UsageCommandName, data: Uint8Array, shown: ShownView | null): Uint8Array {
  const s = ctx.state;
  const { fields, body, authenticator } = decodeUsageCommand(name, 'pki', data);
  const terminal = terminalKey(s, fields.keyId!);
  if (!suiteProvider(s.suite).suite.verify(terminalPublicKey(terminal).signature, usageSignatureMessage(name, s.serial, body), authenticator)) {
    refuse(SW.COMMAND_SIGNATURE_INVALID);
  }
  if (!shown || !constantTimeEqual(shown.cardChallenge, fields.cardChallenge)) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'no view pending, or another one');
  const record = shownTicket(ctx, shown.seq);
  // The gate decided on the view it received: if that is not the view this card showed, a device in between substituted it.
  if (!record || record.tid !== fields.tid || !constantTimeEqual(shown.viewDigest, fields.viewDigest!)) refuse(SW.VIEW_MISMATCH, 'not the view this card showed');
  const signed = signedReceiptPart(apply(ctx, name, record, fields, (op) => scopeAllows(terminal, op)), data);
  return encodeReceipt(signed, { signature: cardSigner(s).sign(receiptSignatureMessage(signed)) });
}

/** Gate mode sym: session 6984, MAC 9106 (chained on the VERIFY answer: terminal and command authenticated), shown ticket 9107. */
function symCommand(ctx: CardContext, name: UsageCommandName, data: Uint8Array, session: SymSession | null): Uint8Array {
  const { fields, body, authenticator: mac } = decodeUsageCommand(name, 'sym', data);
  if (!session || !constantTimeEqual(session.cardChallenge, fields.cardChallenge)) refuse(SW.REFERENCE_DATA_NOT_USABLE, 'no session, or another session');
  if (!checkUsageCommandMac(session.macKey, mac, session.chain, name, ctx.state.serial, body)) refuse(SW.COMMAND_SIGNATURE_INVALID);
  const record = shownTicket(ctx, session.seq);
  if (!record || record.tid !== fields.tid) refuse(SW.VIEW_MISMATCH, 'not the ticket this session showed');
  const receipt = apply(ctx, name, record, fields, (op) => op === session.key.operator);
  return encodeReceipt(receipt, { mac: receiptMac(session.macKey, mac, receipt) });
}

/** The authenticated part on the shown ticket: operator, counter, limits, state, commit; the receipt body out. */
function apply(ctx: CardContext, name: UsageCommandName, record: TicketRecord, f: UsageCommandFields & { event: number }, allowed: (operator: string) => boolean): Uint8Array {
  const s = ctx.state;
  if (!allowed(record.operator)) refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'terminal not authorised for this operator');
  if (f.counter !== record.usage.counter) refuse(SW.COUNTER_MISMATCH);
  // Usage stops one short of the counter's end, so a DELETE (refund, rebooking) always has a counter value left.
  if (name === 'WRITE USAGE' && f.counter >= LIMITS.maxUsageEvents) refuse(SW.CONDITIONS_NOT_SATISFIED, 'counter exhausted');
  if (f.counter > LIMITS.maxUsageEvents) refuse(SW.CONDITIONS_NOT_SATISFIED, 'counter exhausted (an image written before limits.maxUsageEvents)');
  const faceDigest = faceDigestOf(record.face);
  if (name === 'DELETE') {
    const tombstones = [...s.tombstones, { ticketDigest: ticketDigest(record.operator, record.tid), tidDigest: tidDigest(record.tid), issuedAt: record.issuedAt }];
    let floor = s.tombstoneFloor;
    while (tombstones.length > LIMITS.tombstoneSlots) floor = Math.max(floor, tombstones.shift()!.issuedAt);
    ctx.commit({ ...s, tickets: s.tickets.filter((t) => t !== record), tombstones, tombstoneFloor: floor });
    return encodeReceiptBody({ cardSerial: s.serial, tid: f.tid, faceDigest, event: f.event, counter: f.counter + 1 });
  }
  const usage = nextUsage(record.usage, record.maxEntries, { event: f.event, gate: f.gateId, station: f.station, time: f.time }) ?? refuse(SW.CONDITIONS_NOT_SATISFIED, 'event not allowed in this state');
  ctx.commit({ ...s, tickets: s.tickets.map((t) => (t === record ? { ...record, usage } : t)) });
  return encodeReceiptBody({ cardSerial: s.serial, tid: f.tid, faceDigest, event: f.event, counter: f.counter + 1, usage }, encodedUsage(usage));
}

