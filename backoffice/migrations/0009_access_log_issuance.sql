-- eticket back office, migration 9: the holder access log names the issuance of the TID each entry is about
-- (migration 8 gave each issuance of a TID its own real-name row: a TID withdrawn from a full card and issued
-- again has several). It is the issuance whose reference (95) the request named; NULL where no issuance had it (an
-- unknown TID or reference), where the request was refused before its ticket was looked up, and for the entries
-- written before this migration.
ALTER TABLE holder_access_log ADD COLUMN issuance integer CHECK (issuance >= 1);
