-- Wallet top-ups (issue 13): one row per invoice the bot sends. The row holds the
-- amount to credit (USD, exact text) and the price in the method's unit (Stars);
-- the invoice payload names only the row's id ("topup:<id>").
CREATE TABLE topups (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             INTEGER NOT NULL REFERENCES users(id),
    method              TEXT    NOT NULL,                 -- 'stars'
    currency            TEXT    NOT NULL,                 -- 'XTR'
    amount              TEXT    NOT NULL,                 -- USD credited
    price               INTEGER NOT NULL CHECK (price > 0),
    state               TEXT    NOT NULL DEFAULT 'open' CHECK (state IN
        ('open', 'paid', 'refunding', 'refunded', 'refund_failed')),
    created_at          REAL    NOT NULL,
    expires_at          REAL    NOT NULL,
    chat_id             INTEGER,                          -- the invoice message
    message_id          INTEGER,
    charge_id           TEXT,                             -- telegram_payment_charge_id
    provider_charge_id  TEXT,
    paid_at             REAL,
    paid_price          INTEGER,                          -- what was actually paid
    notified_at         REAL,                             -- the user was told (once)
    refund_actor        INTEGER,
    refund_at           REAL,                             -- refund asked for
    next_refund_at      REAL,                             -- retry time while refunding
    refund_attempts     INTEGER NOT NULL DEFAULT 0,
    refund_error        TEXT,
    finished_at         REAL,
    CHECK (state = 'open' OR charge_id IS NOT NULL)
);
-- One row per charge: a payment is credited once, physically.
CREATE UNIQUE INDEX topups_charge ON topups(charge_id) WHERE charge_id IS NOT NULL;
CREATE INDEX topups_user ON topups(user_id, id);
CREATE INDEX topups_refunding ON topups(next_refund_at) WHERE state = 'refunding';

-- Every ledger entry of a top-up names its charge: the credit ('topup'), the
-- refund's debit ('refund') and, if the refund was refused for good, the debit
-- given back ('refund_back'); each at most once per charge.
ALTER TABLE ledger ADD COLUMN charge_id TEXT;
ALTER TABLE ledger ADD COLUMN charge_entry TEXT
    CHECK (charge_entry IS NULL OR charge_entry IN ('topup', 'refund', 'refund_back'));
CREATE UNIQUE INDEX ledger_once_per_charge
    ON ledger(charge_id, charge_entry) WHERE charge_id IS NOT NULL;
