-- eticket back office, migration 3: bills. Each sale (and each refund) gets a bill signed by the authority's
-- current signing key: what was sold, to which card, by which seller, the price, the time, the key id.
-- The signed document is kept byte for byte as issued (text, not jsonb, which would reorder it).

CREATE TABLE bills (
  bill_id     text PRIMARY KEY,
  operator    text NOT NULL,
  tid         text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('sale', 'refund')),
  seller_id   text REFERENCES clients (client_id),
  card_serial text NOT NULL,
  price       bigint NOT NULL,
  currency    text NOT NULL,
  sold_at     timestamptz NOT NULL,
  key_id      text NOT NULL REFERENCES authority_keys (key_id),
  document    text NOT NULL,
  FOREIGN KEY (operator, tid) REFERENCES tickets (operator, tid),
  UNIQUE (operator, tid, kind)
);
CREATE INDEX bills_seller_day ON bills (seller_id, sold_at);
