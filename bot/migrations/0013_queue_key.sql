-- A constant-time claim (docs/scaling.md, "Claim latency"). Every queued job carries its user's
-- latest start, COALESCE(MAX(started_at), -1) over all of the user's jobs: the fair queue's
-- round key (bot/storage/jobs.py QUEUE_ORDER_SQL). A user's queued jobs share one key, so the
-- first job of the fair order is the first row of (queue_key, id) among each user's oldest
-- queued job: one walk of the partial index jobs_claim_order, whatever the queue's length.
-- Triggers keep the key right on every path that queues a job or moves a start (insert, claim,
-- release, reap, take-back, recovery, refusal at claim time), raw SQL included.
-- SQLite version; 0013_queue_key.postgres.sql is the same with a PL/pgSQL trigger function.
ALTER TABLE jobs ADD COLUMN queue_key DOUBLE PRECISION;

UPDATE jobs SET queue_key = (
    SELECT COALESCE(MAX(s.started_at), -1.0) FROM jobs AS s WHERE s.user_id = jobs.user_id
) WHERE status = 'queued';

-- The claim walks this index in order; the second answers "is this the user's oldest queued
-- job?" with one probe.
CREATE INDEX IF NOT EXISTS jobs_claim_order ON jobs (queue_key, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS jobs_user_queued ON jobs (user_id, id) WHERE status = 'queued';

CREATE TRIGGER IF NOT EXISTS jobs_queue_key_insert AFTER INSERT ON jobs
WHEN NEW.status = 'queued'
BEGIN
    UPDATE jobs SET queue_key = (
        SELECT COALESCE(MAX(s.started_at), -1.0) FROM jobs AS s WHERE s.user_id = NEW.user_id
    ) WHERE id = NEW.id;
END;

CREATE TRIGGER IF NOT EXISTS jobs_queue_key_change AFTER UPDATE OF started_at, status ON jobs
WHEN NEW.started_at IS NOT OLD.started_at OR (NEW.status = 'queued' AND OLD.status <> 'queued')
BEGIN
    UPDATE jobs SET queue_key = (
        SELECT COALESCE(MAX(s.started_at), -1.0) FROM jobs AS s WHERE s.user_id = NEW.user_id
    ) WHERE user_id = NEW.user_id AND status = 'queued';
END;
