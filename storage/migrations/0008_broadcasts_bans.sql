-- Admin tools (issue 13, 3a + 3b): bans, users who blocked the bot, activity,
-- and broadcasts that resume after a restart without sending anyone twice.
--
-- banned_at: set by /ban (NULL: not banned); the user is refused everywhere,
-- their open numbers still finish. blocked_at: the bot got 403 "bot was blocked
-- by the user" (or a my_chat_member "kicked"); cleared when they write again.
-- last_seen_at: the user's last message or button press (at most hourly).
ALTER TABLE users ADD COLUMN banned_at REAL;
ALTER TABLE users ADD COLUMN ban_reason TEXT;
ALTER TABLE users ADD COLUMN banned_by INTEGER;
ALTER TABLE users ADD COLUMN blocked_at REAL;
ALTER TABLE users ADD COLUMN last_seen_at REAL;

-- One /broadcast: a draft (the preview with Send / Cancel) until Send, then
-- running until every recipient has an outcome (done) or an admin stops it.
CREATE TABLE broadcasts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_id     INTEGER NOT NULL,
    audience     TEXT    NOT NULL CHECK (audience IN ('all', 'active')),
    text         TEXT    NOT NULL,            -- HTML, as the admin typed it
    state        TEXT    NOT NULL DEFAULT 'draft'
                 CHECK (state IN ('draft', 'running', 'done', 'stopped', 'cancelled')),
    chat_id      INTEGER NOT NULL,            -- the admin's chat (the progress message)
    message_id   INTEGER,                     -- the progress message
    created_at   REAL    NOT NULL,
    started_at   REAL,
    finished_at  REAL
);
CREATE INDEX broadcasts_running ON broadcasts(id) WHERE state = 'running';

-- The recipients, fixed when Send is pressed. A row is claimed ('sending',
-- committed) before its message is sent, so a message is never sent twice: a
-- row still 'sending' after a crash is counted as failed, never resent.
CREATE TABLE broadcast_recipients (
    broadcast_id  INTEGER NOT NULL REFERENCES broadcasts(id),
    user_id       INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'sending', 'delivered', 'blocked', 'failed')),
    updated_at    REAL,
    PRIMARY KEY (broadcast_id, user_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_recipients_state ON broadcast_recipients(broadcast_id, state, user_id);
