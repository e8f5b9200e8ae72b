-- One row that /healthz rewrites (and commits) to prove the database can be written
-- (mirrors storage/migrations/0003).
CREATE TABLE health_probe (
    id         BIGINT  PRIMARY KEY CHECK (id = 1),
    probed_at  DOUBLE PRECISION NOT NULL
);
INSERT INTO health_probe (id, probed_at) VALUES (1, 0);
