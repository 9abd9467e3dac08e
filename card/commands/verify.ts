// VERIFY (patent 631-635): the ticket for a TID, or for a date with train and station, that the key may see,
// with a fresh card challenge. Always 9000 and one length (found, not found, void): only the terminal reads which.
// Gate mode pki seals the view to the terminal and remembers it; sym masks the serial and opens a session.

import { randomBytes } from 'node:crypto';
import { equal } from '../../sdk/bytes.js';
import { VIEW_STATUS } from '../../sdk/commands/ticket-view.js';
import { buildSessionView, decodeVerifyQuery, sessionViewMac, VERIFY_P1 } from '../../sdk/commands/verify.js';
import { sha256 } from '../../sdk/crypto/suite.js';
import { maskSerial, sessionEncrypt, sessionKeys } from '../../sdk/crypto/symmetric.js';
import { toServiceDate } from '../../sdk/fields.js';
import { LIMITS, SW } from '../../sdk/spec.js';
import { tidDigest, type TicketRecord } from '../state.js';
import { refuse, type CommandHandler } from './context.js';
import { scopeAllows, terminalKey } from './keys.js';
import { sealView, travelOrder, viewOf } from './view.js';

/** YYYYMMDD (UTC) of an epoch time. */
function dayOf(epochSeconds: number): number {
  return toServiceDate(new Date(epochSeconds * 1000));
}

export const verify: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  // Any VERIFY ends the shown view and the session, whatever it answers; this one may show its own.
  ctx.ram.shown = null;
  ctx.ram.session = null;
  const q = decodeVerifyQuery(apdu.data);
  const sym = (apdu.p1 & VERIFY_P1.SYM) !== 0;
  const symKey = sym ? (s.symKeys.find((k) => equal(k.id, q.keyId)) ?? refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'unknown diversified key')) : undefined;
  // A key installed before protocol version 2 has no K_priv: the card cannot answer without its serial in clear.
  if (symKey && !symKey.privacyKey) refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'diversified key without K_priv: personalise again');
  const terminal = symKey ? undefined : terminalKey(s, q.keyId);
  const visible = s.tickets.filter((t) => (symKey ? t.operator === symKey.operator : scopeAllows(terminal!, t.operator)));
  let record: TicketRecord | undefined;
  let status: number = VIEW_STATUS.NOT_FOUND;
  const c = q.criteria;
  if ('tid' in c) {
    record = visible.find((t) => t.tid === c.tid);
    if (!record && s.tombstones.some((t) => equal(t.tidDigest, tidDigest(c.tid)))) status = VIEW_STATUS.VOID;
  } else {
    const trainOk = (t: TicketRecord) => c.train === undefined || t.train === c.train;
    const exact = visible.filter((t) => t.serviceDate === c.date && trainOk(t) && (c.station === undefined || t.origin === c.station || t.destination === c.station));
    // A pass (no origin, no destination) serves any station on any day of its validity window.
    record = travelOrder(exact)[0] ?? travelOrder(visible.filter((t) => !t.origin && !t.destination && trainOk(t) && t.serviceDate <= c.date && c.date <= dayOf(t.validUntil)))[0];
  }
  const challenge = new Uint8Array(randomBytes(LIMITS.challengeLength));
  const view = viewOf(s, record, status, {
    terminalChallenge: q.terminalChallenge,
    cardChallenge: challenge,
    verificationCode: (apdu.p1 & VERIFY_P1.AUDIT) !== 0,
    signingCertificate: (apdu.p1 & VERIFY_P1.CERTIFICATE) !== 0,
  });
  if (!symKey) {
    // The next WRITE USAGE / DELETE must answer exactly this view (9107 otherwise).
    ctx.ram.shown = { cardChallenge: challenge, seq: record?.seq ?? 0, viewDigest: sha256(view) };
    return sealView(s, terminal!, view);
  }
  // Gate mode sym: the view is encrypted and MAC'd under keys both challenges derive from K_card; the serial travels
  // masked under the operator's K_priv with this RC, so two answers of one card cannot be linked without it.
  const keys = sessionKeys(symKey.key, q.terminalChallenge, challenge);
  const b5 = buildSessionView(maskSerial(symKey.privacyKey!, s.serial, challenge), challenge, sessionEncrypt(keys.enc, view), (head) => sessionViewMac(keys.mac, head));
  ctx.ram.session = { key: symKey, cardChallenge: challenge, macKey: keys.mac, chain: b5.mac, seq: record?.seq ?? 0 };
  return b5.encoded;
};
