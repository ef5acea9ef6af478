-- GPU cost of each job and the fair queue (docs/architecture.md, "Budgets and the fair queue").
-- Do not put BEGIN/COMMIT here: bot/storage/db.py wraps each migration file in one transaction.

-- What the job costs in "ordinary videos" (bot/services/cost.py: transformer passes × frames ×
-- pixels, 1.0 = the loaded model's default job in DEFAULT_QUALITY), fixed when it is admitted.
-- DAILY_COST_PER_USER and DAILY_COST_PER_CHAT sum it over the jobs created since 00:00 UTC.
-- Rows older than this migration count as one ordinary video each.
ALTER TABLE jobs ADD COLUMN cost REAL NOT NULL DEFAULT 1.0;

-- The daily budget of a group chat sums its jobs of the day.
CREATE INDEX idx_jobs_chat_created ON jobs (chat_id, created_at);
-- The fair queue orders users by the start of their latest render (JobStore.queue_order).
CREATE INDEX idx_jobs_user_started ON jobs (user_id, started_at);
