-- PostgreSQL version of 0005_data_retention.sql.
ALTER TABLE users ADD COLUMN last_seen_at DOUBLE PRECISION;
UPDATE users SET last_seen_at = created_at;
