-- Job numbers per requester: users see "#3", their own third request, never a global counter
-- that reveals how busy the bot is. Existing jobs are numbered in the order they were made.
ALTER TABLE jobs ADD COLUMN number INTEGER;
UPDATE jobs SET number = (
    SELECT COUNT(*) FROM jobs AS earlier
    WHERE earlier.user_id = jobs.user_id AND earlier.id <= jobs.id
);
CREATE INDEX IF NOT EXISTS jobs_user_number ON jobs (user_id, number);
