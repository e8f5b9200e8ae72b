-- DaisyBot schema v1. Money is TEXT holding a decimal string (never REAL);
-- times are REAL Unix seconds from the engine's clock.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,              -- Telegram user id
    role        TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'blocked')),
    locale      TEXT,
    created_at  REAL    NOT NULL,
    settings    TEXT    NOT NULL DEFAULT '{}'     -- JSON object
);

-- DaisySim accounts that fund purchases: the operator's key, or a user's own key.
CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL CHECK (kind IN ('operator', 'user')),
    owner_user_id  INTEGER REFERENCES users(id),
    key_hash       TEXT    NOT NULL UNIQUE,       -- sha256 of the key: lookups, no secret
    key_encrypted  TEXT,                          -- Fernet token; NULL once wiped / operator
    key_masked     TEXT    NOT NULL,              -- "sk_l…9f2a"
    email          TEXT,
    created_at     REAL    NOT NULL,
    removed_at     REAL,                          -- soft delete (unlinked)
    CHECK ((kind = 'operator') = (owner_user_id IS NULL))
);
-- At most one linked key per user.
CREATE UNIQUE INDEX accounts_one_active_per_user
    ON accounts(owner_user_id) WHERE removed_at IS NULL AND owner_user_id IS NOT NULL;

CREATE TABLE activations (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id                   INTEGER NOT NULL REFERENCES users(id),
    account_id                INTEGER NOT NULL REFERENCES accounts(id),
    remote_id                 TEXT,               -- DaisySim activation_id
    service_code              TEXT    NOT NULL,
    service_name              TEXT    NOT NULL,
    provider_id               TEXT,
    phone                     TEXT,
    price                     TEXT    NOT NULL,   -- what the user pays (hold amount until settled)
    cost                      TEXT,               -- upstream amount_charged
    state                     TEXT    NOT NULL CHECK (state IN
        ('purchasing', 'waiting', 'completed', 'cancelling', 'expired', 'refunded', 'failed')),
    code                      TEXT,
    request_id                TEXT    NOT NULL UNIQUE,  -- idempotency of buy
    purchase_sent_at          REAL    NOT NULL,
    purchased_at              REAL,
    cancel_after              REAL,
    expires_at                REAL,
    next_cancel_at            REAL,
    cancel_attempts           INTEGER NOT NULL DEFAULT 0,
    chat_id                   INTEGER,
    message_id                INTEGER,
    refund_amount             TEXT,
    refund_reason             TEXT CHECK (refund_reason IS NULL OR
                                          refund_reason IN ('user_cancel', 'expired', 'failed')),
    finished_at               REAL,
    failure_reason            TEXT,
    cancel_available_emitted  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, remote_id),
    CHECK (state <> 'completed' OR code IS NOT NULL),
    CHECK (state IN ('purchasing', 'failed') OR remote_id IS NOT NULL)
);
CREATE INDEX activations_user ON activations(user_id, id);
CREATE INDEX activations_open ON activations(state)
    WHERE state IN ('purchasing', 'waiting', 'cancelling', 'expired');
CREATE INDEX activations_account_sent ON activations(account_id, purchase_sent_at);

-- Final states are final: the database itself refuses to move a completed,
-- refunded or failed activation to any other state (a refunded number can never
-- complete, a completed one can never be refunded).
CREATE TRIGGER activations_final_is_final
BEFORE UPDATE OF state ON activations
WHEN OLD.state IN ('completed', 'refunded', 'failed') AND NEW.state <> OLD.state
BEGIN
    SELECT RAISE(ABORT, 'activation is in a final state');
END;

-- Operator-mode wallets. Signed amounts: credit/release/refund > 0,
-- debit/hold/charge < 0; a balance is the exact Decimal sum of a user's rows.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    amount         TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN
        ('credit', 'debit', 'hold', 'release', 'charge', 'refund')),
    activation_id  INTEGER REFERENCES activations(id),
    note           TEXT    NOT NULL DEFAULT '',
    actor_id       INTEGER,
    created_at     REAL    NOT NULL,
    CHECK (kind IN ('credit', 'debit') OR activation_id IS NOT NULL),
    CHECK (CASE WHEN kind IN ('credit', 'release', 'refund') THEN CAST(amount AS REAL) > 0
                ELSE CAST(amount AS REAL) < 0 END)
);
-- One hold, one charge, one release, one refund per activation: physically.
CREATE UNIQUE INDEX ledger_once_per_activation
    ON ledger(activation_id, kind) WHERE kind IN ('hold', 'charge', 'release', 'refund');
CREATE INDEX ledger_user ON ledger(user_id, id);

-- No refund for a number that got its code.
CREATE TRIGGER ledger_no_refund_after_code
BEFORE INSERT ON ledger
WHEN NEW.kind = 'refund'
     AND (SELECT state FROM activations WHERE id = NEW.activation_id) = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'a completed activation cannot be refunded');
END;

-- Outbox of user-visible events: each (activation, kind) exists at most once.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    activation_id    INTEGER NOT NULL REFERENCES activations(id),
    kind             TEXT    NOT NULL CHECK (kind IN
        ('code_received', 'cancel_available', 'refunded', 'expired', 'failed')),
    payload          TEXT    NOT NULL,            -- JSON snapshot of the activation
    created_at       REAL    NOT NULL,
    delivered_at     REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,
    last_error       TEXT,
    UNIQUE (activation_id, kind)
);
CREATE INDEX events_pending ON events(id) WHERE delivered_at IS NULL;
