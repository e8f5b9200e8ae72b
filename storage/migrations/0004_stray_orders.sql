-- Purchases whose outcome stayed in doubt, and upstream orders the bot does not own.
--
-- activations.watch_until: a purchase written off as "not bought" without proof
-- (its answer was lost and /history showed no order in time) is watched until
-- then: DaisySim may still complete it late. activations.message_id is now also
-- set at insert time (the pressed "Buying…" message), so every later event closes
-- that screen.
ALTER TABLE activations ADD COLUMN watch_until REAL;
CREATE INDEX activations_watch ON activations(account_id, watch_until)
    WHERE watch_until IS NOT NULL;

-- Orders found in /history that no activation owns: the late order of a
-- written-off purchase (activation_id set), or (operator mode) any unknown order
-- of the operator's key. Each is cancelled for the refund once the cancel lock
-- allows; if its code arrived first it is a loss. One row per upstream order and
-- at most one per written-off purchase.
CREATE TABLE stray_orders (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    remote_id        TEXT    NOT NULL,
    activation_id    INTEGER REFERENCES activations(id),
    service          TEXT    NOT NULL,
    phone            TEXT,
    amount           TEXT    NOT NULL,   -- upstream amount_charged (decimal text)
    ordered_at       REAL    NOT NULL,   -- the order's created_at upstream
    found_at         REAL    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('cancelling', 'refunded', 'lost')),
    code             TEXT,
    refund           TEXT,
    next_attempt_at  REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    finished_at      REAL,
    UNIQUE (account_id, remote_id),
    UNIQUE (activation_id),
    CHECK (state <> 'lost' OR code IS NOT NULL)
);
CREATE INDEX stray_orders_open ON stray_orders(account_id) WHERE state = 'cancelling';

CREATE TRIGGER stray_orders_final_is_final
BEFORE UPDATE OF state ON stray_orders
WHEN OLD.state IN ('refunded', 'lost') AND NEW.state <> OLD.state
BEGIN
    SELECT RAISE(ABORT, 'stray order is in a final state');
END;

-- A new event kind, "purchased": a purchase left in doubt turned out bought.
-- SQLite cannot change a CHECK constraint in place: rebuild the outbox table.
CREATE TABLE events_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    activation_id    INTEGER NOT NULL REFERENCES activations(id),
    kind             TEXT    NOT NULL CHECK (kind IN
        ('code_received', 'cancel_available', 'refunded', 'expired', 'failed', 'purchased')),
    payload          TEXT    NOT NULL,
    created_at       REAL    NOT NULL,
    delivered_at     REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,
    last_error       TEXT,
    dispatches       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (activation_id, kind)
);
INSERT INTO events_new (id, activation_id, kind, payload, created_at, delivered_at, attempts,
                        next_attempt_at, last_error, dispatches)
    SELECT id, activation_id, kind, payload, created_at, delivered_at, attempts,
           next_attempt_at, last_error, dispatches FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_pending ON events(id) WHERE delivered_at IS NULL;
