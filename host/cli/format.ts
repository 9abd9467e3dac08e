// How the CLI shows tickets, usage records, receipts and batch lines: JSON objects for machines (dates
// as YYYY-MM-DD, times as ISO 8601, bytes as hex) and one-line summaries for people.

import { hex } from '../../sdk/bytes.js';
import { formatServiceDate } from '../../sdk/fields.js';
import { protocol } from '../../sdk/spec.js';
import type { TicketFace, UsageRecord } from '../../sdk/ticket.js';
import { symTransactionToJson } from '../../sdk/roles/sym-receipts.js';
import type { Receipt, TicketView } from '../checking.js';

const iso = (t: number) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

export function faceJson(face: TicketFace): Record<string, unknown> {
  const out: Record<string, unknown> = { ...Object.fromEntries(Object.entries(face).map(([k, v]) => [k, v instanceof Uint8Array ? hex(v) : v])), serviceDate: formatServiceDate(face.serviceDate), validFrom: iso(face.validFrom), validUntil: iso(face.validUntil), issuedAt: iso(face.issuedAt) };
  if (face.departure !== undefined) out.departure = `${String(Math.floor(face.departure / 60)).padStart(2, '0')}:${String(face.departure % 60).padStart(2, '0')}`;
  return out;
}

export function usageState(state: number): string {
  return protocol.usageStates.find((s) => s.value === state)?.name ?? `STATE_${state}`;
}

export function usageJson(u: UsageRecord): Record<string, unknown> {
  return { ...u, state: usageState(u.state), lastTime: u.lastTime ? iso(u.lastTime) : undefined };
}

export function ticketJson(v: TicketView): Record<string, unknown> {
  return {
    sequenceNumber: v.sequenceNumber,
    cardSerial: hex(v.cardSerial),
    face: faceJson(v.face),
    usage: usageJson(v.usage),
    ...(v.verificationCode ? { verificationCode: { verified: true, authorityKeyId: hex(v.verificationCode.authorityKeyId), certified: v.verificationCode.certificate !== undefined } } : {}),
  };
}

export function ticketLine(v: TicketView): string {
  const f = v.face;
  const route = [f.origin, f.destination].filter(Boolean).join('→');
  const seat = f.coach || f.seat ? ` ${f.coach ?? ''}/${f.seat ?? ''}` : '';
  return `#${v.sequenceNumber} ${f.tid} ${formatServiceDate(f.serviceDate)} ${f.train ?? ''} ${route}${seat}${f.passenger ? ` ${f.passenger}` : ''} [${usageState(v.usage.state)}, ${v.usage.entries} entr${v.usage.entries === 1 ? 'y' : 'ies'}]`.replace(/ +/g, ' ');
}

export function receiptJson(r: Receipt): Record<string, unknown> {
  return {
    tid: r.tid,
    cardSerial: hex(r.cardSerial),
    event: protocol.usageEvents.find((e) => e.value === r.event)?.name ?? r.event,
    counter: r.counter,
    ...(r.faceDigest ? { faceDigest: hex(r.faceDigest) } : {}),
    ...(r.usage ? { usage: usageJson(r.usage) } : {}),
    receipt: hex(r.encoded),
    // Sym: the MAC is unverifiable without the session it belongs to (verifySymReceipt takes both).
    ...(r.sym ? { transaction: symTransactionToJson(r.sym) } : {}),
  };
}
