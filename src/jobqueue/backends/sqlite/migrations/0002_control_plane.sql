-- control plane: paused names, dispatchers, cancel requests, attempt history, the cancelled state, the job-id counter
--
-- Version 2: what the control plane (pause, live dispatchers, cancel, attempt history) stores.
--
-- Every step here is O(1) in the number of jobs except the CHECK of the new column, which
-- SQLite verifies against existing rows in one read-only pass. The states are guarded by
-- triggers rather than a CHECK on ``state``: SQLite cannot add a constraint to an existing
-- table, and rebuilding ``jobqueue_jobs`` (copy every row, recreate its indexes and triggers)
-- would hold the write lock for minutes on a file with millions of jobs, stopping every
-- dispatcher. The guard matters because the count triggers silently skip a state they do not
-- know, so a stray value would make the counts drift instead of failing.
--
-- ``cancelled`` is a finished state: a cancelled job gets ``finished_at`` like completed and
-- failed ones, which is what the ``jobqueue_finished_*`` partial indexes and retention select
-- on, and it frees its ``unique_key`` (``jobqueue_unique`` lists only live states). The job-id
-- counter is seeded from ``seq``, which was above every id handed out before ids had their own
-- counter (files from before that have no ``job_id`` row); ``MAX`` with the highest id keeps
-- it above the ids present even if ``seq`` were ever behind.
CREATE TABLE jobqueue_paused (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE jobqueue_dispatchers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    names TEXT NOT NULL, -- JSON list of worker names
    concurrency INTEGER NOT NULL,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX jobqueue_dispatchers_expiry ON jobqueue_dispatchers (expires_at);
ALTER TABLE jobqueue_jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0
    CHECK (cancel_requested IN (0, 1));
ALTER TABLE jobqueue_jobs ADD COLUMN dispatcher TEXT;
ALTER TABLE jobqueue_jobs ADD COLUMN history TEXT;
INSERT OR IGNORE INTO jobqueue_counts (state, n) VALUES ('cancelled', 0);
CREATE TRIGGER jobqueue_state_insert BEFORE INSERT ON jobqueue_jobs
    WHEN new.state NOT IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')
    BEGIN SELECT RAISE(ABORT, 'jobqueue_jobs.state is not a job state'); END;
CREATE TRIGGER jobqueue_state_update BEFORE UPDATE OF state ON jobqueue_jobs
    WHEN new.state NOT IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')
    BEGIN SELECT RAISE(ABORT, 'jobqueue_jobs.state is not a job state'); END;
INSERT OR IGNORE INTO jobqueue_meta (key, value)
    SELECT 'job_id', MAX(value, (SELECT COALESCE(MAX(id), 0) FROM jobqueue_jobs))
    FROM jobqueue_meta WHERE key = 'seq';
