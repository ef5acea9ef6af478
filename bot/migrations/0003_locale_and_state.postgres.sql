-- PostgreSQL version of 0003_locale_and_state.sql.

ALTER TABLE jobs ADD COLUMN locale TEXT;

CREATE TABLE app_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
