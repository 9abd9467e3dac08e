-- eticket back office, migration 5: real-name tickets (docs/realname.md). The holder's private data is kept
-- encrypted, per ticket, until the ticket expires, is deleted or used up, or its reads run out; then the record
-- and its key are deleted (not flagged) and the table is rewritten. Only registered checking terminals with a
-- grant, a signed request and an unused TOTP code may read it, a limited number of times; every read and every
-- refusal is logged by ticket and terminal, never with the holder's data.

-- The key a terminal's holder answers are sealed to (its own, not the card-protocol keys 4/5), and, RSA, the
-- operator CA's certificate for it. SM9: the encryption public key of the terminal's identity (hid 03).
ALTER TABLE clients ADD COLUMN encryption_key bytea;
ALTER TABLE clients ADD COLUMN encryption_certificate bytea;

-- The TOTP (RFC 6238) a terminal shares with the service since its registration. The secret is sealed
-- (AES-256-GCM) under the holder master key named by master_key_id, which never comes to the database.
CREATE TABLE terminal_totp (
  client_id     text PRIMARY KEY REFERENCES clients (client_id),
  algorithm     text NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  digits        integer NOT NULL CHECK (digits BETWEEN 6 AND 8),
  period        integer NOT NULL CHECK (period BETWEEN 1 AND 300),
  master_key_id text NOT NULL,
  secret_sealed bytea NOT NULL
);

-- TOTP time steps a terminal has spent: a code is accepted once, by every service process on this database.
-- Steps older than the accepted window are useless (refused as off the clock) and purged.
CREATE TABLE totp_used (
  client_id text NOT NULL REFERENCES clients (client_id),
  step      bigint NOT NULL,
  used_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, step)
);

-- The permission table: what a terminal may check. A grant matches a ticket when each of its non-null columns
-- equals the ticket's (station: the ticket's origin or destination); a terminal may read a ticket's holder data
-- when one of its grants matches. All three null: any ticket of this back office (granted explicitly, --any).
CREATE TABLE terminal_permissions (
  grant_id   serial PRIMARY KEY,
  client_id  text NOT NULL REFERENCES clients (client_id),
  operator   text,
  station    text,
  kind       integer CHECK (kind BETWEEN 0 AND 255),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE NULLS NOT DISTINCT (client_id, operator, station, kind)
);

-- How many times the holder data of a ticket of a kind (TF_A 92; 0 = no kind) may be read. A kind without a
-- row takes kind 0's, and without that the service's default. Copied into each ticket when it is issued.
CREATE TABLE realname_read_limits (
  kind      integer PRIMARY KEY CHECK (kind BETWEEN 0 AND 255),
  max_reads integer NOT NULL CHECK (max_reads BETWEEN 1 AND 1000)
);

-- One row per real-name ticket, with nothing private in it: the reference on the face, what the permission
-- table matches, the expiry (the face's validUntil), the reads, and whether the record is still held.
-- Kept after destruction, so the service can say why ("expired", "reads_exhausted", ...).
CREATE TABLE realname_tickets (
  operator         text NOT NULL,
  tid              text NOT NULL,
  holder_ref       bytea NOT NULL UNIQUE CHECK (length(holder_ref) = 16),
  origin           text,
  destination      text,
  kind             integer,
  expires_at       timestamptz NOT NULL,
  reads_max        integer NOT NULL CHECK (reads_max >= 1),
  reads_used       integer NOT NULL DEFAULT 0,
  state            text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'destroyed')),
  destroyed_at     timestamptz,
  destroyed_reason text CHECK (destroyed_reason IN ('expired', 'deleted', 'cancelled', 'used_up', 'reads_exhausted')),
  PRIMARY KEY (operator, tid),
  FOREIGN KEY (operator, tid) REFERENCES tickets (operator, tid),
  CHECK (reads_used BETWEEN 0 AND reads_max),
  CHECK ((state = 'destroyed') = (destroyed_at IS NOT NULL AND destroyed_reason IS NOT NULL))
);
CREATE INDEX realname_tickets_expiry ON realname_tickets (expires_at) WHERE state = 'held';

-- The holder records themselves: salt and record sealed (AES-256-GCM, bound to operator, TID and reference)
-- under a data key of their own, which is sealed under the holder master key (crypto-shredding). Destroying a
-- record deletes its row, data key included; the sweep then rewrites the table (VACUUM FULL) so that the bytes
-- leave its files too (docs/realname.md "Privacy guarantees").
CREATE TABLE holder_records (
  operator      text NOT NULL,
  tid           text NOT NULL,
  master_key_id text NOT NULL,
  wrapped_key   bytea NOT NULL,
  sealed        bytea NOT NULL,
  PRIMARY KEY (operator, tid),
  FOREIGN KEY (operator, tid) REFERENCES realname_tickets (operator, tid)
);

-- Every read and every refusal of a holder-data request, with its reason. Names the ticket and the terminal
-- (as it called itself when it could not be authenticated); never the holder's data.
CREATE TABLE holder_access_log (
  entry_id   bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  client_id  text NOT NULL,
  operator   text,
  tid        text,
  outcome    text NOT NULL CHECK (outcome IN ('read', 'refused')),
  reason     text NOT NULL,
  reads_left integer
);
CREATE INDEX holder_access_log_ticket ON holder_access_log (operator, tid, at);
CREATE INDEX holder_access_log_client ON holder_access_log (client_id, at);

-- Destructions since the holder table was last rewritten: the sweep runs VACUUM FULL only when there are some.
CREATE TABLE realname_sweeps (
  id               integer PRIMARY KEY CHECK (id = 1),
  destructions     bigint NOT NULL DEFAULT 0,
  vacuumed_through bigint NOT NULL DEFAULT 0,
  last_vacuum_at   timestamptz
);
INSERT INTO realname_sweeps (id) VALUES (1);
