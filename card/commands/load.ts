// LOAD (patent 611-614): open the first ciphertext with key 3, check TF_V with a root key scoped to the ticket's
// operator (or a signing key one certified, A4), check that the face is bound to this card, refuse duplicates and
// replays (tombstones, floor), then store the ticket if the table and NVM hold it. Checks in apdu-spec order.

import { equal } from '../../sdk/bytes.js';
import { decodeLoadPayload, encodeLoadAnswer } from '../../sdk/commands/load.js';
import { EnvelopeError, open } from '../../sdk/crypto/envelope.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { resolveSigningKey } from '../../sdk/roles/key-chain.js';
import { wellFormedCertificate } from './keys.js';
import { LIMITS, SW } from '../../sdk/spec.js';
import { FACE_VERSION, newUsageRecord, verificationCodeMessage } from '../../sdk/ticket.js';
import { makeRecord, ticketDigest, type CardState } from '../state.js';
import { refuse, type CommandHandler } from './context.js';
import { cardDecrypter, chainRefusal, rootKeys, suiteName } from './keys.js';

export const load: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  let plaintext: Uint8Array;
  try {
    plaintext = open(cardDecrypter(s), s.suite, s.serial, apdu.data);
  } catch (e) {
    if (!(e instanceof EnvelopeError)) throw e;
    refuse(e.reason === 'format' ? SW.INCORRECT_DATA : e.reason === 'recipient' ? SW.TICKET_NOT_FOR_THIS_CARD : SW.INCORRECT_SM_DATA_OBJECTS);
  }
  const { face, faceEncoded, verificationCode: tfv, verificationCodeEncoded } = decodeLoadPayload(plaintext);
  // Version 1 faces name no card: anyone who saw one could seal it to another card. They stay only where they are.
  if (face.version !== FACE_VERSION.CARD_BOUND) refuse(SW.INCORRECT_DATA, 'ticket face version 1 is not bound to a card');
  // A longer TF_V would not fit the fixed view length of VERIFY's audit answers.
  if (verificationCodeEncoded.length > LIMITS.verificationCodeSlot) refuse(SW.INCORRECT_DATA, 'TF_V longer than limits.verificationCodeSlot');
  if (tfv.certificate && !wellFormedCertificate(tfv.certificate)) refuse(SW.INCORRECT_DATA, 'malformed key certificate (A4)');
  if (tfv.suite !== s.suite) refuse(SW.TICKET_SIGNATURE_INVALID, 'TF_V of another suite');
  // The card's time is the newest issue time it accepted, so a certificate that ended before it is retired here.
  const key = resolveSigningKey(suiteName(s), tfv.authorityKeyId, tfv.certificate, rootKeys(s), { operator: face.operator, at: face.issuedAt, now: s.cardTime });
  if (!key.ok) refuse(chainRefusal(key.failure), key.message);
  if (!suiteProvider(s.suite).suite.verify(key.publicKey, verificationCodeMessage(faceEncoded), tfv.signature)) refuse(SW.TICKET_SIGNATURE_INVALID);
  // Signed, so the binding is the authority's word: a ticket seen elsewhere cannot be sealed to this card.
  if (!equal(face.card!, s.serial)) refuse(SW.TICKET_NOT_FOR_THIS_CARD, 'the face names another card');
  if (s.tickets.some((t) => t.operator === face.operator && t.tid === face.tid)) refuse(SW.ALREADY_EXISTS);
  const digest = ticketDigest(face.operator, face.tid);
  if (face.issuedAt <= s.tombstoneFloor || s.tombstones.some((t) => equal(t.ticketDigest, digest))) refuse(SW.TICKET_REPLAYED);
  if (s.tickets.length >= LIMITS.maxTickets) refuse(SW.NOT_ENOUGH_MEMORY, 'ticket table full');
  const seq = freeSequenceNumber(s);
  const record = makeRecord(seq, faceEncoded, verificationCodeEncoded, newUsageRecord());
  ctx.commit({ ...s, tickets: [...s.tickets, record], nextSeq: seq === 0xffff ? 1 : seq + 1, cardTime: Math.max(s.cardTime, face.issuedAt) });
  return encodeLoadAnswer({ sequenceNumber: seq, tid: face.tid });
};

/**
 * The next sequence number not in use, from nextSeq on, wrapping 65535 to 1 (0 is void). The table holds at most
 * limits.maxTickets (< 65535) tickets, so a free number is found within maxTickets + 1 steps.
 */
function freeSequenceNumber(s: CardState): number {
  // Numbers are handed out in order, so nextSeq is nearly always free: one pass to see that, a set only when it is not.
  if (!s.tickets.some((t) => t.seq === s.nextSeq)) return s.nextSeq;
  const used = new Set(s.tickets.map((t) => t.seq));
  let seq = s.nextSeq;
  for (let i = 0; used.has(seq) && i <= LIMITS.maxTickets; i++) seq = seq === 0xffff ? 1 : seq + 1;
  return seq;
}
