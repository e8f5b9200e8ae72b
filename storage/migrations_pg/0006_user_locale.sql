-- The user's language (issue 12; mirrors storage/migrations/0006): locale_chosen = 1
-- once the user picked it with /language. A 0/1 integer as in SQLite (not BOOLEAN),
-- so the Python side reads the same values on both backends.
ALTER TABLE users ADD COLUMN locale_chosen BIGINT NOT NULL DEFAULT 0;
