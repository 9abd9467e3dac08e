-- eticket back office, migration 7: bills belong to one issuance of a TID. A ticket withdrawn from a card that
-- never took it (full, the batch stopped) is cancelled and refunded and its TID released; issuing that TID again
-- (to the next card) replaces the cancelled row in place, as issuance 2, with a sale bill of its own. The bills'
-- UNIQUE (operator, tid, kind) allowed one sale per TID ever; it becomes one sale and one refund per issuance.
-- Rows written before this migration are issuance 1 (the only one their TID had).

-- The how-many-th issuance of its TID this row is (Store.insertTicket adds 1 when it re-issues a cancelled,
-- never-loaded ticket).
ALTER TABLE tickets ADD COLUMN issuance integer NOT NULL DEFAULT 1 CHECK (issuance >= 1);

-- The issuance of the ticket the bill was signed for (its ticket's issuance when it was written).
ALTER TABLE bills ADD COLUMN issuance integer NOT NULL DEFAULT 1 CHECK (issuance >= 1);

-- The name PostgreSQL gave migration 3's UNIQUE (operator, tid, kind) (<table>_<columns>_key); no IF EXISTS: a
-- store where it is named otherwise stops here rather than keep a constraint that refuses every re-issue.
ALTER TABLE bills DROP CONSTRAINT bills_operator_tid_kind_key;
ALTER TABLE bills ADD CONSTRAINT bills_operator_tid_issuance_kind_key UNIQUE (operator, tid, issuance, kind);
