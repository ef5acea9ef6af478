-- Leases: a job running in a worker process (python -m bot.worker, or the embedded worker of
-- python -m bot) belongs to that worker only while its lease holds (docs/architecture.md,
-- "Leases, fences and heartbeats"). Times are UNIX seconds from the DATABASE clock
-- (bot/storage/clock.py), never a worker's own: machines' clocks drift, the database has one.
-- Portable SQL (SQLite 3.40 and PostgreSQL 16): no BEGIN/COMMIT, no REAL, no AUTOINCREMENT.
ALTER TABLE jobs ADD COLUMN worker_id TEXT;
ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN heartbeat_at DOUBLE PRECISION;
-- Progress as the last heartbeat carried it: the front end shows it (pipeline.progress.Stage).
ALTER TABLE jobs ADD COLUMN stage TEXT;
ALTER TABLE jobs ADD COLUMN step INTEGER;
ALTER TABLE jobs ADD COLUMN steps INTEGER;
ALTER TABLE jobs ADD COLUMN elapsed DOUBLE PRECISION;

-- The reaper scans running jobs by lease expiry.
CREATE INDEX IF NOT EXISTS jobs_status_lease ON jobs (status, lease_until);

-- Every worker that ever started: what its model allows (a front end without a model validates
-- requests with it) and when it was last seen (/stats lists workers).
CREATE TABLE IF NOT EXISTS workers (
    worker_id   TEXT PRIMARY KEY,
    model_info  TEXT NOT NULL,
    device      TEXT NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    last_seen   DOUBLE PRECISION NOT NULL,
    stopped_at  DOUBLE PRECISION
);
