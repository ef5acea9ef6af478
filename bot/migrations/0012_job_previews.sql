-- The live preview of a job rendered by a worker in another process (python -m bot.worker):
-- the newest small JPEG (<= 320 px) of its running attempt, written by the worker's heartbeat
-- path (fenced by attempt), read by the front end's JobWatcher, which shows it in the status
-- photo. One row per running job; deleted when the render ends, and by the reaper for jobs no
-- longer running under that attempt (a killed worker's row).
CREATE TABLE IF NOT EXISTS job_previews (
    job_id BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    step INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BYTEA NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
