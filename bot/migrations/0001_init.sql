-- Initial schema: users and the durable job queue (docs/architecture.md, "Database").
-- Times are UNIX seconds (UTC). JSON columns hold text produced by bot/jobs.py and bot/users.py.
-- Do not put BEGIN/COMMIT here: bot/db.py wraps each migration file in one transaction.

CREATE TABLE users (
    user_id     INTEGER PRIMARY KEY,
    username    TEXT,
    first_name  TEXT,
    created_at  REAL    NOT NULL,
    banned      INTEGER NOT NULL DEFAULT 0,
    settings    TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             INTEGER NOT NULL,
    chat_id             INTEGER NOT NULL,
    request_message_id  INTEGER,
    status_message_id   INTEGER,
    status              TEXT    NOT NULL DEFAULT 'queued',
    prompt              TEXT    NOT NULL,
    prompt_en           TEXT,
    options             TEXT    NOT NULL,
    translate           INTEGER NOT NULL DEFAULT 1,
    attempts            INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    created_at          REAL    NOT NULL,
    started_at          REAL,
    generated_at        REAL,
    finished_at         REAL,
    gen_seconds         REAL,
    video_path          TEXT,
    video_meta          TEXT,
    file_id             TEXT,
    result_message_id   INTEGER,
    progress            REAL    NOT NULL DEFAULT 0,
    source              TEXT    NOT NULL DEFAULT 'request'
);

-- The claim query and queue positions scan queued jobs by id.
CREATE INDEX idx_jobs_status_id ON jobs (status, id);
-- Per-user limits (active jobs, daily count) and /history.
CREATE INDEX idx_jobs_user_created ON jobs (user_id, created_at);
-- /stats windows and the 7-day hourly chart.
CREATE INDEX idx_jobs_created ON jobs (created_at);
