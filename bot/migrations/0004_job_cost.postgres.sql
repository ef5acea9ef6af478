-- PostgreSQL version of 0004_job_cost.sql.

ALTER TABLE jobs ADD COLUMN cost DOUBLE PRECISION NOT NULL DEFAULT 1.0;

CREATE INDEX idx_jobs_chat_created ON jobs (chat_id, created_at);
CREATE INDEX idx_jobs_user_started ON jobs (user_id, started_at);
