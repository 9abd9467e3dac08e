// LOAD (patent 611-614): open the first ciphertext with key 3, check TF_V with an authority key scoped to the
// ticket's operator, refuse duplicates and replays (tombstones, floor), then store the ticket if it fits.

import { equal } from '../../sdk/bytes.js';
import { decodeLoadPayload, encodeLoadAnswer } from '../../sdk/commands/load.js';
import { EnvelopeError, open } from '../../sdk/crypto/envelope.js';
import { suiteProvider } from '../../sdk/crypto/suites.js';
import { SW } from '../../sdk/spec.js';
import { newUsageRecord, verificationCodeMessage } from '../../sdk/ticket.js';
import { makeRecord, ticketDigest, type CardState } from '../state.js';
import { refuse, type CommandHandler } from './context.js';
import { cardDecrypter, scopeAllows } from './keys.js';

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
  if (tfv.suite !== s.suite) refuse(SW.TICKET_SIGNATURE_INVALID, 'TF_V of another suite');
  const authority = s.authorityKeys.find((k) => equal(k.id, tfv.authorityKeyId) && scopeAllows(k, face.operator));
  if (!authority) refuse(SW.REFERENCED_DATA_NOT_FOUND, 'no authority key for this ticket');
  if (!suiteProvider(s.suite).suite.verify(authority.key, verificationCodeMessage(faceEncoded), tfv.signature)) refuse(SW.TICKET_SIGNATURE_INVALID);
  if (s.tickets.some((t) => t.operator === face.operator && t.tid === face.tid)) refuse(SW.ALREADY_EXISTS);
  const digest = ticketDigest(face.operator, face.tid);
  if (face.issuedAt <= s.tombstoneFloor || s.tombstones.some((t) => equal(t.ticketDigest, digest))) refuse(SW.TICKET_REPLAYED);
  const seq = freeSequenceNumber(s);
  const record = makeRecord(seq, faceEncoded, verificationCodeEncoded, newUsageRecord());
  ctx.commit({ ...s, tickets: [...s.tickets, record], nextSeq: seq === 0xffff ? 1 : seq + 1 });
  return encodeLoadAnswer({ sequenceNumber: seq, tid: face.tid });
};

/** The next sequence number not in use, from nextSeq on, wrapping 65535 to 1 (0 is void). */
function freeSequenceNumber(s: CardState): number {
  const used = new Set(s.tickets.map((t) => t.seq));
  let seq = s.nextSeq;
  while (used.has(seq)) seq = seq === 0xffff ? 1 : seq + 1;
  return seq;
}
