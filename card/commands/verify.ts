// VERIFY (patent 631-635): the ticket for a TID, or for a date with train and station, that the key may see,
// with a fresh card challenge. Gate mode pki seals the view to the terminal; sym opens a session (README 3.5).

import { randomBytes } from 'node:crypto';
import { equal } from '../../sdk/bytes.js';
import { decodeVerifyQuery, encodeSessionView, sessionViewHead, sessionViewMac, VERIFY_P1 } from '../../sdk/commands/verify.js';
import { sessionEncrypt, sessionKeys } from '../../sdk/crypto/symmetric.js';
import { LIMITS, SW } from '../../sdk/spec.js';
import { tidDigest, type TicketRecord } from '../state.js';
import { refuse, type CommandHandler } from './context.js';
import { scopeAllows, terminalKey } from './keys.js';
import { sealView, travelOrder, viewOf } from './view.js';

/** YYYYMMDD (UTC) of an epoch time. */
function dayOf(epochSeconds: number): number {
  const d = new Date(epochSeconds * 1000);
  return d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}

export const verify: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  const q = decodeVerifyQuery(apdu.data);
  const symKey = apdu.p1 & VERIFY_P1.SYM ? (s.symKeys.find((k) => equal(k.id, q.keyId)) ?? refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'unknown diversified key')) : undefined;
  const terminal = symKey ? undefined : terminalKey(s, q.keyId);
  const visible = s.tickets.filter((t) => (symKey ? t.operator === symKey.operator : scopeAllows(terminal!, t.operator)));
  let record: TicketRecord | undefined;
  const c = q.criteria;
  if ('tid' in c) {
    record = visible.find((t) => t.tid === c.tid);
    if (!record && s.tombstones.some((t) => equal(t.tidDigest, tidDigest(c.tid)))) refuse(SW.TICKET_VOID);
  } else {
    const trainOk = (t: TicketRecord) => c.train === undefined || t.train === c.train;
    const exact = visible.filter((t) => t.serviceDate === c.date && trainOk(t) && (c.station === undefined || t.origin === c.station || t.destination === c.station));
    // A pass (no origin, no destination) serves any station on any day of its validity window.
    record = travelOrder(exact)[0] ?? travelOrder(visible.filter((t) => !t.origin && !t.destination && trainOk(t) && t.serviceDate <= c.date && c.date <= dayOf(t.validUntil)))[0];
  }
  if (!record) refuse(SW.RECORD_NOT_FOUND);
  const challenge = new Uint8Array(randomBytes(LIMITS.challengeLength));
  const view = viewOf(s, record, { terminalChallenge: q.terminalChallenge, cardChallenge: challenge, verificationCode: apdu.p1 & VERIFY_P1.AUDIT ? record.tfv : undefined });
  // Any VERIFY ends the pending challenge and session; this one then hands out its own.
  ctx.ram.challenge = null;
  ctx.ram.session = null;
  if (!symKey) {
    ctx.ram.challenge = challenge;
    return sealView(s, terminal!, view);
  }
  // Gate mode sym: the view is encrypted and MAC'd under keys both challenges derive from K_card.
  const keys = sessionKeys(symKey.key, q.terminalChallenge, challenge);
  const head = sessionViewHead(s.serial, challenge, sessionEncrypt(keys.enc, view));
  const mac = sessionViewMac(keys.mac, head);
  ctx.ram.session = { key: symKey, cardChallenge: challenge, macKey: keys.mac, chain: mac };
  return encodeSessionView(head, mac);
};
