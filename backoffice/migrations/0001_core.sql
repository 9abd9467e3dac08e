-- eticket back office, migration 1: what issuance needs. The operator's keys and their history, the cards
-- tickets were sealed to, every TID ever issued, the tickets themselves, and the receipts cards gave back.
-- Times are timestamptz; key ids and card serials are upper-case hex text (readable in psql and reports).

-- Settings of this store: the operator and suite it serves (one store, one operator today; the columns
-- below name the operator anyway so that a multi-operator back office needs no new keys).
CREATE TABLE settings (
  name  text PRIMARY KEY,
  value text NOT NULL
);

-- The authority's public keys, past and present (arbitration verifies old signatures against them).
-- role 'root': the long-term key cards hold (PUT KEY P1=01); it certifies the signing keys.
-- role 'signing': a rotated key with its A4 certificate (sdk/roles/key-certificate.ts) signed by a root key.
-- Private halves never come here: they stay encrypted in the working directory's keys/.
CREATE TABLE authority_keys (
  key_id       text PRIMARY KEY CHECK (key_id ~ '^[0-9A-F]{16}$'),
  operator     text NOT NULL,
  suite        text NOT NULL CHECK (suite IN ('rsa', 'sm9')),
  role         text NOT NULL CHECK (role IN ('root', 'signing')),
  public_key   bytea NOT NULL,
  -- SM9: the identity the KGC extracted the key for.
  identity     text,
  certificate  bytea,
  certified_by text REFERENCES authority_keys (key_id),
  -- Name of the private key in the working directory's key store.
  key_name     text NOT NULL,
  valid_from   timestamptz NOT NULL,
  valid_until  timestamptz,
  retired_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CHECK (role = 'root' OR (certificate IS NOT NULL AND certified_by IS NOT NULL AND valid_until IS NOT NULL))
);
-- At most one current signing key per operator: two rotations at once cannot both win.
CREATE UNIQUE INDEX authority_keys_one_current ON authority_keys (operator) WHERE role = 'signing' AND retired_at IS NULL;

-- Cards the authority sealed tickets to, with what proves their keys (receipts are checked against it later).
CREATE TABLE cards (
  serial                 text PRIMARY KEY CHECK (serial ~ '^[0-9A-F]{16}$'),
  suite                  text NOT NULL CHECK (suite IN ('rsa', 'sm9')),
  encryption_certificate bytea,
  signing_certificate    bytea,
  identity               text,
  first_seen             timestamptz NOT NULL DEFAULT now()
);

-- API clients: third-party sellers, issuing terminals, gates. Each has its own signing key, certified by the
-- operator's CA (RSA) or an identity under the KGC (SM9); requests are signed with it (docs/backoffice.md).
CREATE TABLE clients (
  client_id   text PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9_.-]{1,32}$'),
  role        text NOT NULL CHECK (role IN ('seller', 'terminal')),
  name        text NOT NULL,
  operator    text NOT NULL,
  suite       text NOT NULL CHECK (suite IN ('rsa', 'sm9')),
  public_key  bytea NOT NULL,
  certificate bytea,
  identity    text,
  key_id      text NOT NULL UNIQUE,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Terminals are clients with a kind and a place (gate journals and real-name permissions hang off this).
CREATE TABLE terminals (
  client_id text PRIMARY KEY REFERENCES clients (client_id),
  kind      text NOT NULL CHECK (kind IN ('issuing', 'gate', 'inspector')),
  station   text
);

-- Request nonces seen, with their time: a replay is refused by every service process on this database.
-- Rows older than the timestamp window are useless (a request that old is refused as stale) and purged.
CREATE TABLE request_nonces (
  client_id text NOT NULL REFERENCES clients (client_id),
  nonce     text NOT NULL,
  seen_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, nonce)
);
CREATE INDEX request_nonces_seen ON request_nonces (seen_at);

-- Every TID ever given out, so none is given twice; card_serial is where it was sealed to.
-- request_key: fingerprint of the batch line that got it, so a re-run of the batch gets the same TID.
CREATE TABLE tids (
  operator    text NOT NULL,
  tid         text NOT NULL,
  card_serial text,
  request_key text,
  source      text NOT NULL DEFAULT 'store' CHECK (source IN ('store', 'ledger')),
  reserved_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (operator, tid),
  UNIQUE (operator, request_key)
);

-- The counter behind generated TIDs (<operator>-<date>-<counter>).
CREATE TABLE tid_counters (
  operator text PRIMARY KEY,
  last     bigint NOT NULL DEFAULT 0
);

-- Issued tickets: the face (TF_A) and verification code (TF_V) as signed, the first ciphertext sealed to the
-- card, and where the ticket is in its life: sealed (waiting for its card) → loaded → deleted / cancelled.
CREATE TABLE tickets (
  operator        text NOT NULL,
  tid             text NOT NULL,
  card_serial     text NOT NULL REFERENCES cards (serial),
  seller_id       text REFERENCES clients (client_id),
  key_id          text NOT NULL REFERENCES authority_keys (key_id),
  face            bytea NOT NULL,
  verification_code bytea NOT NULL,
  sealed          bytea NOT NULL,
  service_date    integer NOT NULL,
  fare            bigint,
  currency        text,
  status          text NOT NULL CHECK (status IN ('sealed', 'loaded', 'deleted', 'cancelled')),
  sequence_number integer,
  issued_at       timestamptz NOT NULL DEFAULT now(),
  loaded_at       timestamptz,
  closed_at       timestamptz,
  -- Rebooking: the ticket that replaced this one.
  replaced_by     text,
  PRIMARY KEY (operator, tid),
  FOREIGN KEY (operator, tid) REFERENCES tids (operator, tid)
);
CREATE INDEX tickets_waiting ON tickets (card_serial) WHERE status = 'sealed';
CREATE INDEX tickets_seller ON tickets (seller_id, issued_at);

-- Card receipts (B4) exactly as received: usage (WRITE USAGE) and deletion (DELETE), signed (pki) or MAC'd
-- (sym, with the transaction the gate logged). Stored once: the same bytes twice are one receipt.
CREATE TABLE receipts (
  receipt_id  bigserial PRIMARY KEY,
  digest      bytea NOT NULL UNIQUE,
  card_serial text NOT NULL,
  operator    text NOT NULL,
  tid         text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('usage', 'deletion')),
  event       integer NOT NULL,
  counter     integer NOT NULL,
  mode        text NOT NULL CHECK (mode IN ('pki', 'sym')),
  encoded     bytea NOT NULL,
  transaction jsonb,
  -- Who handed it in (a CLI command, a terminal's client id).
  source      text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX receipts_ticket ON receipts (operator, tid);
CREATE INDEX receipts_card ON receipts (card_serial, counter);
