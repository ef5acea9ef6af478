-- PostgreSQL version of 0002_update_inbox.sql.

CREATE TABLE update_inbox (
    update_id   BIGINT  PRIMARY KEY,
    payload     TEXT    NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX idx_update_inbox_done ON update_inbox (done, update_id);

ALTER TABLE jobs ADD COLUMN update_id BIGINT;
CREATE UNIQUE INDEX idx_jobs_update_id ON jobs (update_id) WHERE update_id IS NOT NULL;
