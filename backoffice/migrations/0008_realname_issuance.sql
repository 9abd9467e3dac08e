-- eticket back office, migration 8: real-name rows belong to one issuance of a TID, as bills do since migration 7.
-- A real-name ticket withdrawn from a full card has its holder record destroyed (reason 'cancelled') and keeps its
-- realname_tickets row, which says when and why; keyed (operator, tid), that row refused the TID's next issuance
-- (23505 on realname_tickets_pkey). Each issuance now has a row of its own, keyed (operator, tid, issuance): the
-- withdrawn issuance's row stays, destroyed, with its reason; the next one gets a new reference, salt, data key and
-- record. At most one row of a TID holds a record (realname_tickets_held), and that is the ticket's current issuance.

ALTER TABLE realname_tickets ADD COLUMN issuance integer CHECK (issuance >= 1);
ALTER TABLE holder_records ADD COLUMN issuance integer;

-- Which issuance an existing row belongs to: the ticket's current one when its face carries the row's reference
-- (95: 16 random bytes, unique), else an earlier one (the TID was withdrawn and issued again without a holder,
-- which migration 5's key allowed); which one is not recorded, the latest it can be is taken.
UPDATE realname_tickets r SET issuance = CASE WHEN position(r.holder_ref IN t.face) > 0 THEN t.issuance ELSE greatest(t.issuance - 1, 1) END
  FROM tickets t WHERE t.operator = r.operator AND t.tid = r.tid;
UPDATE holder_records h SET issuance = r.issuance FROM realname_tickets r WHERE r.operator = h.operator AND r.tid = h.tid;
ALTER TABLE realname_tickets ALTER COLUMN issuance SET NOT NULL;
ALTER TABLE holder_records ALTER COLUMN issuance SET NOT NULL;

-- The names PostgreSQL gave migration 5's keys; no IF EXISTS (a store where they are named otherwise stops here).
ALTER TABLE holder_records DROP CONSTRAINT holder_records_operator_tid_fkey;
ALTER TABLE holder_records DROP CONSTRAINT holder_records_pkey;
ALTER TABLE realname_tickets DROP CONSTRAINT realname_tickets_pkey;
ALTER TABLE realname_tickets ADD CONSTRAINT realname_tickets_pkey PRIMARY KEY (operator, tid, issuance);
ALTER TABLE holder_records ADD CONSTRAINT holder_records_pkey PRIMARY KEY (operator, tid, issuance);
ALTER TABLE holder_records ADD CONSTRAINT holder_records_issuance_fkey FOREIGN KEY (operator, tid, issuance) REFERENCES realname_tickets (operator, tid, issuance);
CREATE UNIQUE INDEX realname_tickets_held ON realname_tickets (operator, tid) WHERE state = 'held';
