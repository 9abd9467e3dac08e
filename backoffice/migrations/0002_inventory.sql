-- eticket back office, migration 2: inventory. A service (train, route or event on a date) has classes with
-- a price and a number of seats; each seat is a row, so a seat is sold at most once (its tid is unique) and
-- concurrent bookers each lock a different free seat (FOR UPDATE SKIP LOCKED), never oversell.

CREATE TABLE services (
  service_id   serial PRIMARY KEY,
  operator     text NOT NULL,
  code         text NOT NULL,
  service_date integer NOT NULL,
  origin       text,
  destination  text,
  departure    integer,
  kind         integer,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (operator, code, service_date)
);

CREATE TABLE service_classes (
  service_id integer NOT NULL REFERENCES services (service_id),
  class      text NOT NULL,
  price      bigint NOT NULL CHECK (price >= 0),
  currency   text NOT NULL,
  capacity   integer NOT NULL CHECK (capacity > 0),
  -- Kept equal to the class's free seats by the same transactions that take and free them.
  seats_left integer NOT NULL CHECK (seats_left >= 0),
  PRIMARY KEY (service_id, class)
);

CREATE TABLE seats (
  service_id integer NOT NULL,
  class      text NOT NULL,
  coach      text NOT NULL,
  seat       text NOT NULL,
  operator   text,
  tid        text,
  PRIMARY KEY (service_id, coach, seat),
  FOREIGN KEY (service_id, class) REFERENCES service_classes (service_id, class),
  UNIQUE (operator, tid),
  CHECK ((operator IS NULL) = (tid IS NULL))
);
CREATE INDEX seats_free ON seats (service_id, class, coach, seat) WHERE tid IS NULL;

ALTER TABLE tickets ADD COLUMN service_id integer REFERENCES services (service_id);
ALTER TABLE tickets ADD COLUMN class text;
ALTER TABLE tickets ADD COLUMN coach text;
ALTER TABLE tickets ADD COLUMN seat text;
