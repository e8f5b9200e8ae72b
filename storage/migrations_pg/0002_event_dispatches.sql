-- How many times delivery of an event was started. Counted (and committed) before
-- the handler runs; a handler failure also counts in `attempts`. dispatches >
-- attempts on a pending event means a delivery was cut off by a crash and may
-- already have reached the user. (Mirrors storage/migrations/0002.)
ALTER TABLE events ADD COLUMN dispatches BIGINT NOT NULL DEFAULT 0;
