-- One row that /healthz rewrites (and commits) to prove the database can be written:
-- a full disk, a read-only file or file system, or a lock held too long shows as 503.
CREATE TABLE health_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at  REAL    NOT NULL
);
INSERT INTO health_probe (id, probed_at) VALUES (1, 0);
