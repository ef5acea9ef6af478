-- Photo requests (image-to-video): the photo a job animates, fitted to the model's size (PNG),
-- stored with the job in the same transaction as its row, so it survives a restart and reaches
-- a worker on another machine with the queue itself. One row per photo job; text jobs have none.
CREATE TABLE IF NOT EXISTS job_images (
    job_id BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    data BYTEA NOT NULL,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    source_width INTEGER,
    source_height INTEGER,
    created_at DOUBLE PRECISION NOT NULL
);
