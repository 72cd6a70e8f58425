-- the base layout: jobs, logs, counts per state kept by triggers
--
-- Exactly what version 1 created; files in the field carry it, so it never changes.
-- Partial indexes keep every hot query an index seek whatever the table size: the claim reads
-- the first entry of (name, priority, seq) among waiting jobs only; promotion reads due delayed
-- jobs; recovery reads expired leases; retention reads the oldest finished jobs.
CREATE TABLE jobqueue_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO jobqueue_meta (key, value) VALUES ('schema_version', 1), ('seq', 0),
    ('job_id', 0);
CREATE TABLE jobqueue_jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    run_at REAL NOT NULL,
    lease_token TEXT,
    lease_expires_at REAL,
    unique_key TEXT,
    attempts INTEGER NOT NULL,
    attempts_made INTEGER NOT NULL,
    stalls INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress REAL NOT NULL,
    progress_message TEXT,
    title TEXT,
    timeout REAL,
    backoff TEXT NOT NULL,
    data TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX jobqueue_waiting ON jobqueue_jobs (name, priority DESC, seq) WHERE state = 'waiting';
CREATE INDEX jobqueue_delayed ON jobqueue_jobs (run_at, seq) WHERE state = 'delayed';
CREATE INDEX jobqueue_active ON jobqueue_jobs (lease_expires_at) WHERE state = 'active';
CREATE INDEX jobqueue_finished_order ON jobqueue_jobs (state, seq) WHERE finished_at IS NOT NULL;
CREATE INDEX jobqueue_finished_at
    ON jobqueue_jobs (state, finished_at DESC, id DESC) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobqueue_unique ON jobqueue_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('waiting', 'delayed', 'active');
CREATE TABLE jobqueue_logs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX jobqueue_logs_job ON jobqueue_logs (job_id, id);
-- Counts per state, kept by triggers, so counting and retention never scan the table.
CREATE TABLE jobqueue_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO jobqueue_counts (state, n) VALUES
    ('waiting', 0), ('delayed', 0), ('active', 0), ('completed', 0), ('failed', 0);
CREATE TRIGGER jobqueue_count_insert AFTER INSERT ON jobqueue_jobs BEGIN
    UPDATE jobqueue_counts SET n = n + 1 WHERE state = new.state;
END;
CREATE TRIGGER jobqueue_count_delete AFTER DELETE ON jobqueue_jobs BEGIN
    UPDATE jobqueue_counts SET n = n - 1 WHERE state = old.state;
END;
CREATE TRIGGER jobqueue_count_update AFTER UPDATE OF state ON jobqueue_jobs
    WHEN old.state IS NOT new.state BEGIN
    UPDATE jobqueue_counts SET n = n - 1 WHERE state = old.state;
    UPDATE jobqueue_counts SET n = n + 1 WHERE state = new.state;
END;
PRAGMA application_id = 1248813649;
