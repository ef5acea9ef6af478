-- Languages and durable operator state (docs/architecture.md, "Database").
-- Do not put BEGIN/COMMIT here: bot/storage/db.py wraps each migration file in one transaction.

-- The language the requester reads ('ru', 'en'): status messages, captions and final words of a
-- job are written in it, also by code that runs outside the user's update (the worker side).
ALTER TABLE jobs ADD COLUMN locale TEXT;

-- Operator switches that must survive a restart and be shared by every process, e.g. the
-- /pause flag: key 'paused', value '1' or '0'.
CREATE TABLE app_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
