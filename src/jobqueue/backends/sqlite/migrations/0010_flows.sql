-- flows: the blocked state and each job's flow, dependencies, dependents and their outcomes
--
-- Version 10: workflows (``queue.submit_flow``). A job of a flow names its flow (``flow_id``:
-- the id of the flow's first job), the jobs it waits for and the jobs waiting for it
-- (``depends_on``, ``dependents``: JSON lists of ``[job_id, on_failure]``) and what each
-- dependency delivered (``dependency_outcomes``: a JSON object by job id). All four are NULL
-- for a job of no flow: its insert leaves them out, so ordinary jobs cost nothing more. A job
-- waiting for its dependencies is ``blocked``: live (it holds its unique key), listed in
-- order (``jobqueue_blocked``), never claimed, promoted or expired. The CHECK of ``state``
-- must allow it, and SQLite cannot change a table's CHECK, so the table is rebuilt as
-- migration 9 rebuilt it (``dialect.rebuild_for_flows``: one pass over the table, holding
-- the write lock; 7 s for a million jobs on a busy 2-core machine), its indexes and triggers
-- recreated from their own SQL; then the statements after the marker below bring the ones
-- that list the states up to date: the live states' unique index, the state guard, the count
-- of blocked jobs. ``jobqueue_flow`` lists a flow's jobs (the CLI), holding only jobs of one.
CREATE TABLE jobqueue_jobs_v10 (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL CHECK (typeof(name) = 'text'),
    state TEXT NOT NULL CHECK (
        state IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled', 'blocked')
    ),
    priority INTEGER NOT NULL CHECK (typeof(priority) = 'integer'),
    seq INTEGER NOT NULL CHECK (typeof(seq) = 'integer'),
    run_at REAL NOT NULL CHECK (typeof(run_at) = 'real'),
    lease_token TEXT CHECK (typeof(lease_token) IN ('text', 'null')),
    lease_expires_at REAL CHECK (typeof(lease_expires_at) IN ('real', 'null')),
    unique_key TEXT CHECK (typeof(unique_key) IN ('text', 'null')),
    attempts INTEGER NOT NULL CHECK (typeof(attempts) = 'integer'),
    attempts_made INTEGER NOT NULL CHECK (typeof(attempts_made) = 'integer'),
    stalls INTEGER NOT NULL CHECK (typeof(stalls) = 'integer'),
    created_at REAL NOT NULL CHECK (typeof(created_at) = 'real'),
    started_at REAL CHECK (typeof(started_at) IN ('real', 'null')),
    finished_at REAL CHECK (typeof(finished_at) IN ('real', 'null')),
    progress REAL NOT NULL CHECK (typeof(progress) = 'real'),
    progress_message TEXT CHECK (typeof(progress_message) IN ('text', 'null')),
    title TEXT CHECK (typeof(title) IN ('text', 'null')),
    timeout REAL CHECK (typeof(timeout) IN ('real', 'null')),
    backoff TEXT NOT NULL,
    data TEXT NOT NULL,
    result TEXT,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    dispatcher TEXT CHECK (typeof(dispatcher) IN ('text', 'null')),
    history TEXT,
    ended_lease TEXT CHECK (typeof(ended_lease) IN ('text', 'null')),
    flow_id TEXT CHECK (typeof(flow_id) IN ('text', 'null')),
    depends_on TEXT,
    dependents TEXT,
    dependency_outcomes TEXT
);
-- after the copy:
DROP INDEX jobqueue_unique;
CREATE UNIQUE INDEX jobqueue_unique ON jobqueue_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('waiting', 'delayed', 'active', 'blocked');
DROP TRIGGER jobqueue_state_insert;
DROP TRIGGER jobqueue_state_update;
CREATE TRIGGER jobqueue_state_insert BEFORE INSERT ON jobqueue_jobs
    WHEN new.state NOT IN (
        'waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled', 'blocked'
    )
    BEGIN SELECT RAISE(ABORT, 'jobqueue_jobs.state is not a job state'); END;
CREATE TRIGGER jobqueue_state_update BEFORE UPDATE OF state ON jobqueue_jobs
    WHEN new.state NOT IN (
        'waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled', 'blocked'
    )
    BEGIN SELECT RAISE(ABORT, 'jobqueue_jobs.state is not a job state'); END;
INSERT OR IGNORE INTO jobqueue_counts (state, n) VALUES ('blocked', 0);
CREATE INDEX jobqueue_blocked ON jobqueue_jobs (seq) WHERE state = 'blocked';
CREATE INDEX jobqueue_flow ON jobqueue_jobs (flow_id) WHERE flow_id IS NOT NULL;
