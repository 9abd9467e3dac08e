-- eticket back office, migration 14: incremental trip matching (docs/gates.md "Trips and fares"). Each queued
-- ticket carries the keys ('gate/seq') of the PASS taps stored for it since the matcher last took it, appended by
-- the ingest transaction that stored them (under the queue row's lock, so none is lost to a concurrent matcher).
-- A matcher that still holds the ticket's earlier taps reads only these; NULL (rows queued before this migration):
-- it reads all of the ticket's taps, as before.
ALTER TABLE match_queue ADD COLUMN taps text[];

-- Bumped by every matching round under the matcher's lock: a matcher that sees another round than its own last
-- one forgets what it kept (another process matched in between).
INSERT INTO settings (name, value) VALUES ('trips.matcher_generation', '0') ON CONFLICT (name) DO NOTHING;
