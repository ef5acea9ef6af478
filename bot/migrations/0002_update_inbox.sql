-- Durable update inbox (docs/architecture.md, "Update inbox"; bot/polling.py).
-- Every update fetched by long polling is written here, in one transaction per batch, before
-- the getUpdates offset that confirms it to Telegram is sent; ``done`` turns 1 when its handler
-- finished. Rows with done = 0 are replayed at the next start; done rows older than a day are
-- pruned (Telegram itself forgets unconfirmed updates after 24 h).
-- Do not put BEGIN/COMMIT here: bot/db.py wraps each migration file in one transaction.

CREATE TABLE update_inbox (
    update_id   INTEGER PRIMARY KEY,
    payload     TEXT    NOT NULL,
    received_at REAL    NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0
);

-- Replay scans the unfinished rows, oldest first; pruning scans done rows by age.
CREATE INDEX idx_update_inbox_done ON update_inbox (done, update_id);

-- The update that created a job (NULL for jobs created otherwise, and for rows older than this
-- migration): a replayed update finds its job instead of queuing a second one.
ALTER TABLE jobs ADD COLUMN update_id INTEGER;
CREATE UNIQUE INDEX idx_jobs_update_id ON jobs (update_id) WHERE update_id IS NOT NULL;
