-- PostgreSQL version of 0001_init.sql (same tables, columns, constraints and indexes).
-- Ids are BIGINT (Telegram user and chat ids exceed 32 bits), times DOUBLE PRECISION UNIX
-- seconds (never REAL: float4 would lose seconds). bot/storage/db.py wraps it in one transaction.

CREATE TABLE users (
    user_id     BIGINT PRIMARY KEY,
    username    TEXT,
    first_name  TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    banned      INTEGER NOT NULL DEFAULT 0,
    settings    TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE jobs (
    id                  BIGSERIAL PRIMARY KEY,
    user_id             BIGINT  NOT NULL,
    chat_id             BIGINT  NOT NULL,
    request_message_id  BIGINT,
    status_message_id   BIGINT,
    status              TEXT    NOT NULL DEFAULT 'queued',
    prompt              TEXT    NOT NULL,
    prompt_en           TEXT,
    options             TEXT    NOT NULL,
    translate           INTEGER NOT NULL DEFAULT 1,
    attempts            INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    created_at          DOUBLE PRECISION NOT NULL,
    started_at          DOUBLE PRECISION,
    generated_at        DOUBLE PRECISION,
    finished_at         DOUBLE PRECISION,
    gen_seconds         DOUBLE PRECISION,
    video_path          TEXT,
    video_meta          TEXT,
    file_id             TEXT,
    result_message_id   BIGINT,
    progress            DOUBLE PRECISION NOT NULL DEFAULT 0,
    source              TEXT    NOT NULL DEFAULT 'request'
);

CREATE INDEX idx_jobs_status_id ON jobs (status, id);
CREATE INDEX idx_jobs_user_created ON jobs (user_id, created_at);
CREATE INDEX idx_jobs_created ON jobs (created_at);
