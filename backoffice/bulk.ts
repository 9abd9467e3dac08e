// Bulk import of tickets issued outside this store (with their signed bills): a farm of pre-loaded cards for a
// simulation, or tickets taken over from another system. One statement per table and chunk, in one transaction.

import { decodeBill } from '../sdk/roles/bill.js';
import { decodeTicketFace } from '../sdk/ticket.js';
import type { Store } from './store/store.js';

export interface IssuedTicket {
  cardSerial: string;
  suite: 'rsa' | 'sm9';
  /** Encoded A1 and A2 as the card holds them. */
  face: Uint8Array;
  verificationCode: Uint8Array;
  sellerId?: string;
  /** The signed sale bill (eticket-bill/1 document). */
  bill: string;
  /** Authority key that signed TF_V (must be in the key history). */
  keyId: string;
}

/** Import tickets as loaded (their cards hold them already). Existing TIDs are left as they are. Returns how many were new. */
export async function importIssued(store: Store, tickets: IssuedTicket[], chunk = 2000): Promise<number> {
  let added = 0;
  for (let i = 0; i < tickets.length; i += chunk) {
    const part = tickets.slice(i, i + chunk).map((t) => ({ t, face: decodeTicketFace(t.face), bill: decodeBill(t.bill) }));
    added += await store.transaction(async (tx) => {
      const col = <T>(f: (x: (typeof part)[number]) => T) => part.map(f);
      await tx.query('INSERT INTO cards (serial, suite) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (serial) DO NOTHING', [col((x) => x.t.cardSerial), col((x) => x.t.suite)]);
      const r = await tx.query<{ tid: string }>("INSERT INTO tids (operator, tid, card_serial) SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING RETURNING tid", [col((x) => x.face.operator), col((x) => x.face.tid), col((x) => x.t.cardSerial)]);
      const fresh = new Set(r.rows.map((x) => x.tid));
      const rows = part.filter((x) => fresh.has(x.face.tid));
      if (!rows.length) return 0;
      const c = <T>(f: (x: (typeof part)[number]) => T) => rows.map(f);
      await tx.query(
        `INSERT INTO tickets (operator, tid, card_serial, seller_id, key_id, face, verification_code, sealed, service_date, fare, currency, status, issued_at, loaded_at)
         SELECT o, t, c, s, k, f, v, '\\x'::bytea, d, fa, cu, 'loaded', i, i FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::int[], $9::bigint[], $10::text[], $11::timestamptz[]) AS x(o, t, c, s, k, f, v, d, fa, cu, i)`,
        [c((x) => x.face.operator), c((x) => x.face.tid), c((x) => x.t.cardSerial), c((x) => x.t.sellerId ?? null), c((x) => x.t.keyId), c((x) => x.t.face), c((x) => x.t.verificationCode), c((x) => x.face.serviceDate), c((x) => x.face.fare ?? null), c((x) => x.face.currency ?? null), c((x) => new Date(x.face.issuedAt * 1000))],
      );
      await tx.query(
        `INSERT INTO bills (bill_id, operator, tid, kind, seller_id, card_serial, price, currency, sold_at, key_id, document)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::timestamptz[], $10::text[], $11::text[])`,
        [c((x) => x.bill.billId), c((x) => x.bill.operator), c((x) => x.bill.tid), c((x) => x.bill.kind), c((x) => (x.bill.seller === '(operator)' ? null : x.bill.seller)), c((x) => x.bill.card), c((x) => x.bill.price), c((x) => x.bill.currency), c((x) => new Date(x.bill.time * 1000)), c((x) => x.bill.keyId), c((x) => x.t.bill)],
      );
      return rows.length;
    });
  }
  return added;
}
