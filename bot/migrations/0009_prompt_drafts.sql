-- The prompt improver (PROMPT_MODEL; README, "Prompt improver"). Portable SQL: SQLite and PostgreSQL.
-- Do not put BEGIN/COMMIT here: bot/storage/db.py wraps each migration file in one transaction.

-- Whether a job's English prompt comes from the prompt improver: improved at render time by the
-- worker when prompt_en is still empty ("always", or "ask" where the front end has no improver),
-- or chosen by the user in advance ("ask": prompt_en holds the improved prompt). A repeat of such
-- a job keeps its improved prompt.
ALTER TABLE jobs ADD COLUMN improve INTEGER NOT NULL DEFAULT 0;

-- A request waiting for the user's choice between the improved prompt and the text as written
-- ("ask"). state: improving → ready → chosen. The token (random, in the buttons' callback data)
-- names the draft; update_id (the message that asked) makes its creation idempotent when the
-- update is replayed after a crash; choice_update_id (the press that chose) makes the job the
-- choice queues idempotent the same way, and a second press finds the draft chosen.
CREATE TABLE prompt_drafts (
    token               TEXT PRIMARY KEY,
    update_id           BIGINT UNIQUE,
    user_id             BIGINT NOT NULL,
    chat_id             BIGINT NOT NULL,
    request_message_id  BIGINT,
    request             TEXT NOT NULL,
    locale              TEXT,
    state               TEXT NOT NULL DEFAULT 'improving',
    improved            TEXT,
    reason              TEXT,
    message_id          BIGINT,
    choice              TEXT,
    choice_update_id    BIGINT,
    created_at          DOUBLE PRECISION NOT NULL
);

-- Pruning old drafts scans by age.
CREATE INDEX idx_prompt_drafts_created ON prompt_drafts (created_at);
