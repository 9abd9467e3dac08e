-- eticket back office, migration 4: gate journals, trips and fares, anomalies and denylists (docs/gates.md).
-- Taps are stored once per (gate, seq); a tap that fails verification is kept apart with its reason. Trips,
-- anomalies and the denylist are worked out from the taps by the matcher, one ticket at a time.

-- Every verified tap: the record exactly as the gate journalled it (with the card's receipt and, in sym mode, the
-- transaction inside it, byte for byte as the card and the gate made them), and what the matcher reads out of it.
CREATE TABLE gate_taps (
  gate_id          text NOT NULL REFERENCES clients (client_id),
  seq              bigint NOT NULL CHECK (seq >= 1),
  hash             bytea NOT NULL,
  tap_time         timestamptz NOT NULL,
  direction        text NOT NULL CHECK (direction IN ('entry', 'exit')),
  pass             boolean NOT NULL,
  reason           text,
  station          text NOT NULL,
  mode             text NOT NULL CHECK (mode IN ('pki', 'sym')),
  operator         text,
  tid              text,
  card_serial      text,
  -- PASS: the counter in the card's receipt (after the tap); REJECT: the counter the card showed.
  counter          integer,
  event            integer,
  -- SHA-256 of what the card said it did (ticket, event, counter, new TF_B, face digest): two receipts with one
  -- counter and another content are one card image used twice.
  content          bytea,
  denylist_version integer NOT NULL,
  real_name        text CHECK (real_name IN ('checked', 'not_checked', 'mismatch')),
  record           bytea NOT NULL,
  received_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (gate_id, seq),
  CHECK (NOT pass OR content IS NOT NULL)
);
CREATE INDEX gate_taps_ticket ON gate_taps (operator, tid, tap_time) WHERE pass;

-- The gate's signatures over the head of its chain, as uploaded (each authenticates the records before it).
CREATE TABLE gate_checkpoints (
  gate_id     text NOT NULL REFERENCES clients (client_id),
  seq         bigint NOT NULL,
  head        bytea NOT NULL,
  signed_at   timestamptz NOT NULL,
  signature   bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (gate_id, seq)
);

-- Records that failed verification (gate authentication, card receipt, a second record under a seq already
-- taken), kept apart with the reason: never silently dropped, never counted as travel.
CREATE TABLE journal_quarantine (
  quarantine_id bigserial PRIMARY KEY,
  gate_id       text NOT NULL,
  seq           bigint,
  hash          bytea NOT NULL,
  reason        text NOT NULL,
  record        bytea NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (gate_id, seq, hash)
);

-- Tickets with new taps whose trips and anomalies must be worked out again.
CREATE TABLE match_queue (
  operator  text NOT NULL,
  tid       text NOT NULL,
  queued_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (operator, tid)
);

-- The network: stations with their fare zone; the minimum travel time between two stations (from the links'
-- shortest paths) bounds how fast a card can honestly appear at both.
CREATE TABLE stations (
  operator text NOT NULL,
  station  text NOT NULL,
  zone     text,
  PRIMARY KEY (operator, station)
);
CREATE TABLE travel_times (
  operator    text NOT NULL,
  origin      text NOT NULL,
  destination text NOT NULL,
  seconds     integer NOT NULL CHECK (seconds >= 0),
  PRIMARY KEY (operator, origin, destination)
);

-- Fare tables, by station pair or zone pair, loaded from CSV; the newest is current.
CREATE TABLE fare_tables (
  table_id  serial PRIMARY KEY,
  operator  text NOT NULL,
  basis     text NOT NULL CHECK (basis IN ('station', 'zone')),
  currency  text NOT NULL,
  max_fare  bigint NOT NULL CHECK (max_fare >= 0),
  source    text,
  loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE fares (
  table_id    integer NOT NULL REFERENCES fare_tables (table_id),
  origin      text NOT NULL,
  destination text NOT NULL,
  fare        bigint NOT NULL CHECK (fare >= 0),
  PRIMARY KEY (table_id, origin, destination)
);

-- Trips matched from a ticket's taps: entry and exit (complete), an entry never followed by an exit within the
-- configured time (incomplete, maximum fare), an exit without an entry (exit_only, maximum fare), or an entry
-- still travelling (open). Named by the tap that starts them; worked out again when new taps arrive.
CREATE TABLE trips (
  trip_key      text PRIMARY KEY,
  operator      text NOT NULL,
  tid           text NOT NULL,
  card_serial   text NOT NULL,
  seller_id     text,
  sold          boolean NOT NULL,
  per_trip      boolean NOT NULL,
  entry_gate    text,
  entry_seq     bigint,
  entry_station text,
  entry_time    timestamptz,
  exit_gate     text,
  exit_seq      bigint,
  exit_station  text,
  exit_time     timestamptz,
  status        text NOT NULL CHECK (status IN ('open', 'complete', 'incomplete', 'exit_only')),
  fare          bigint,
  currency      text,
  table_id      integer REFERENCES fare_tables (table_id),
  day           date NOT NULL
);
CREATE INDEX trips_ticket ON trips (operator, tid);
CREATE INDEX trips_day ON trips (day, seller_id);
CREATE INDEX trips_open ON trips (entry_time) WHERE status = 'open';

-- Clones and rollbacks, each found once (fingerprint), with the taps that show it.
CREATE TABLE anomalies (
  anomaly_id  bigserial PRIMARY KEY,
  fingerprint text NOT NULL UNIQUE,
  kind        text NOT NULL CHECK (kind IN ('counter_conflict', 'counter_backwards', 'double_entry', 'impossible_travel', 'wrong_card', 'journal_fork')),
  operator    text,
  tid         text,
  card_serial text,
  gate_id     text,
  first_gate  text,
  first_seq   bigint,
  second_gate text,
  second_seq  bigint,
  detail      text NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX anomalies_card ON anomalies (card_serial);

-- The denylist in versions: a card is on it from added_version until removed_version. Version n's list is every
-- row with added_version <= n and (removed_version is null or > n): full lists and deltas both come from it.
CREATE TABLE denylist_state (
  operator text PRIMARY KEY,
  version  integer NOT NULL DEFAULT 0
);
CREATE TABLE denylist_versions (
  operator   text NOT NULL,
  version    integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  note       text,
  PRIMARY KEY (operator, version)
);
CREATE TABLE denylist (
  operator        text NOT NULL,
  card_serial     text NOT NULL CHECK (card_serial ~ '^[0-9A-F]{16}$'),
  reason          text NOT NULL,
  anomaly_id      bigint REFERENCES anomalies (anomaly_id),
  added_version   integer NOT NULL,
  removed_version integer,
  PRIMARY KEY (operator, card_serial, added_version)
);
-- A card is on the list at most once at a time.
CREATE UNIQUE INDEX denylist_current ON denylist (operator, card_serial) WHERE removed_version IS NULL;
