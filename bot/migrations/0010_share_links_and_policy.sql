-- Share links and the content policy's counters (README, "Share links" and "Content policy").
-- Portable SQL (SQLite and PostgreSQL). Do not put BEGIN/COMMIT here: bot/storage/db.py wraps
-- each migration file in one transaction.

-- «🔗 Поделиться»: a random token (secrets.token_urlsafe(16): 22 characters of A-Z a-z 0-9 _ -,
-- 128 bits) that opens a job's prompt and options for anyone, as /start <token>. One token per
-- job; it names nothing about the sharer. A job whose prompt DATA_RETENTION_DAYS forgot keeps its
-- row, and its link answers that it expired.
CREATE TABLE share_links (
    token       TEXT PRIMARY KEY,
    job_id      BIGINT NOT NULL UNIQUE,
    created_at  DOUBLE PRECISION NOT NULL
);

-- What the content policy refused, per UTC day (YYYY-MM-DD) and kind: 'prompt' (a request whose
-- text matched BLOCKED_WORDS_FILE), 'render' (the translated prompt matched in the worker),
-- 'video' (NSFW_MODEL withheld a finished video). /stats shows today and the total.
CREATE TABLE policy_counts (
    day         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    hits        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind)
);
