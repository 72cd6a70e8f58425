-- the jobs table checks the type of every plain column
--
-- Version 9: every plain column of the jobs table checked for its SQLite type, so a value
-- written by anything but jobqueue (a text ``priority`` sorts before every number and crashed
-- each claim) is refused by the write itself with an IntegrityError. SQLite cannot add a
-- CHECK to a table, so the table is rebuilt the way its documentation prescribes (a new table,
-- every row copied, the old one dropped, the new one renamed) and its indexes and triggers,
-- whatever earlier steps made, are recreated from their own SQL. Rows that would not fit are
-- made to fit first (``dialect.fail_foreign_typed_rows``: a live job among them fails as
-- corrupt with its reason). The rebuild holds the write lock for one pass over the table and
-- its indexes, once (7 s for a million jobs on a busy 2-core machine, 0.6 s for 100,000);
-- ``typeof`` rather than STRICT keeps the file readable by SQLite older than 3.37. The JSON
-- columns stay unchecked: decoding them is their check.
CREATE TABLE jobqueue_jobs_v9 (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL CHECK (typeof(name) = 'text'),
    state TEXT NOT NULL
        CHECK (state IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')),
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
    ended_lease TEXT CHECK (typeof(ended_lease) IN ('text', 'null'))
);
