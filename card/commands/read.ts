// READ (patent 621-622): the first ticket for the date or later (and the train) that the terminal key may see,
// then the next one per READ P1=01 of the same query; a view with status 01 (no match) ends the list. Every answer
// is the second ciphertext of a view of one fixed length, so a keyless reader cannot count or find tickets.

import { hex } from '../../sdk/bytes.js';
import { decodeReadQuery, READ_P1 } from '../../sdk/commands/read.js';
import { VIEW_STATUS } from '../../sdk/commands/ticket-view.js';
import { SW } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';
import { scopeAllows, terminalKey } from './keys.js';
import { sealView, travelOrder, viewOf } from './view.js';

export const read: CommandHandler = (ctx, apdu) => {
  const q = decodeReadQuery(apdu.data);
  const terminal = terminalKey(ctx.state, q.keyId);
  const queryKey = hex(apdu.data);
  const cursor = ctx.ram.readCursor;
  const next = apdu.p1 === READ_P1.NEXT;
  if (next && (!cursor || cursor.query !== queryKey)) refuse(SW.CONDITIONS_NOT_SATISFIED, 'READ next without READ first');
  const matches = travelOrder(
    ctx.state.tickets.filter((t) => scopeAllows(terminal, t.operator) && (q.date === undefined || t.serviceDate >= q.date) && (q.train === undefined || t.train === q.train)),
  );
  const idx = next ? matches.findIndex((t) => t.seq === cursor!.lastSeq) + 1 : 0;
  // The previous ticket may have been deleted meanwhile: then there is no "next" after it.
  const record = !next || idx > 0 ? matches[idx] : undefined;
  ctx.ram.readCursor = record ? { query: queryKey, lastSeq: record.seq } : null;
  return sealView(ctx.state, terminal, viewOf(ctx.state, record, VIEW_STATUS.NOT_FOUND, { terminalChallenge: q.terminalChallenge }));
};
