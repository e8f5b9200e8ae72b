-- Operator prices and alerts (issue 13).
-- price_overrides: an admin's /price rule per service (a markup "+20%" or a fixed
-- price "0.75"); it wins over PRICE_OVERRIDES. service_key: the code, casefolded.
CREATE TABLE price_overrides (
    service_key TEXT PRIMARY KEY,
    service_code TEXT NOT NULL,
    rule TEXT NOT NULL,
    admin_id INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
-- operator_alerts: one row per alert kind ("low_balance", "operator_empty"), fired = 1
-- from the crossing that sent it until it is re-armed (survives restarts).
CREATE TABLE operator_alerts (
    kind TEXT PRIMARY KEY,
    fired INTEGER NOT NULL DEFAULT 0,
    balance TEXT,
    changed_at REAL NOT NULL
);
-- alert_deliveries: one message per admin per alert, written with the crossing in one
-- transaction and marked sent once Telegram took it (so a crash loses none).
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    admin_id INTEGER NOT NULL,
    balance TEXT,
    threshold TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_deliveries_unsent ON alert_deliveries (id) WHERE sent_at IS NULL;
