-- PostgreSQL version of 0013_queue_key.sql (same column, indexes and rules; the trigger body is
-- a PL/pgSQL function, its text in single quotes so bot/storage/db.py splits the file right).
ALTER TABLE jobs ADD COLUMN queue_key DOUBLE PRECISION;

UPDATE jobs SET queue_key = (
    SELECT COALESCE(MAX(s.started_at), -1.0) FROM jobs AS s WHERE s.user_id = jobs.user_id
) WHERE status = 'queued';

CREATE INDEX IF NOT EXISTS jobs_claim_order ON jobs (queue_key, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS jobs_user_queued ON jobs (user_id, id) WHERE status = 'queued';

CREATE OR REPLACE FUNCTION jobs_queue_key() RETURNS trigger LANGUAGE plpgsql AS '
DECLARE
    latest DOUBLE PRECISION;
BEGIN
    SELECT COALESCE(MAX(s.started_at), -1.0) INTO latest FROM jobs AS s
    WHERE s.user_id = NEW.user_id;
    UPDATE jobs SET queue_key = latest
    WHERE user_id = NEW.user_id AND status = ''queued'' AND queue_key IS DISTINCT FROM latest;
    RETURN NULL;
END';

-- CREATE TRIGGER inside DO: bot/storage/db.py splits files with SQLite's tokenizer, which would
-- read a bare CREATE TRIGGER up to an END.
DO '
BEGIN
    CREATE TRIGGER jobs_queue_key_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.status = ''queued'') EXECUTE FUNCTION jobs_queue_key();
    CREATE TRIGGER jobs_queue_key_change AFTER UPDATE OF started_at, status ON jobs
    FOR EACH ROW
    WHEN (NEW.started_at IS DISTINCT FROM OLD.started_at
          OR (NEW.status = ''queued'' AND OLD.status <> ''queued''))
    EXECUTE FUNCTION jobs_queue_key();
END';
