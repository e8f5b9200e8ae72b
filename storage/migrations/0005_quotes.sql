-- Quotes: the exact price shown on a confirmation screen, persisted with an id,
-- so Confirm carries only that id (never a price) and still works after a
-- restart within the quote's lifetime. A quote buys at most once: consuming it
-- (activation_id set) is written in the purchase's own transaction, and the
-- purchase's request id is derived from the quote id.
CREATE TABLE quotes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    service_code   TEXT    NOT NULL,
    provider_id    TEXT,               -- the user's choice (NULL: cheapest available)
    pool           TEXT,               -- the pool the price is the price of
    price          TEXT    NOT NULL,   -- the user's price (decimal text)
    created_at     REAL    NOT NULL,
    expires_at     REAL    NOT NULL,
    activation_id  INTEGER REFERENCES activations(id),  -- set when consumed
    consumed_at    REAL,
    CHECK (expires_at >= created_at),
    CHECK ((activation_id IS NULL) = (consumed_at IS NULL))
);
CREATE INDEX quotes_expiry ON quotes(expires_at) WHERE activation_id IS NULL;
CREATE UNIQUE INDEX quotes_activation ON quotes(activation_id) WHERE activation_id IS NOT NULL;
