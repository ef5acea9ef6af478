-- DATA_RETENTION_DAYS: when a user was last seen, so the names of users who left can be forgotten.
ALTER TABLE users ADD COLUMN last_seen_at REAL;
UPDATE users SET last_seen_at = created_at;
