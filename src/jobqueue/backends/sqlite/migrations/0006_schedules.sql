-- periodic schedules: their high-water marks and recent ticks
--
-- Version 6: periodic schedules (``Transitions.claim_tick``): one row per schedule with its
-- high-water mark (``last_tick``: a claim of a tick at or before it changes nothing, which is
-- what lets any number of schedulers run), and its recent ticks, trimmed to the newest
-- ``policy.SCHEDULE_TICKS_KEPT`` by the claim that adds one, in its own transaction. Job ids
-- are kept as the jobs table's integers, without a foreign key: a job removed by retention or
-- a purge leaves its id behind, which simply names no live job. The tick table's key leads
-- with the schedule, so the trim and a record's read are seeks. New tables with their
-- constraints are O(1) in the number of jobs.
CREATE TABLE jobqueue_schedules (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL, -- canonical JSON ('' until the first claim)
    last_tick REAL, -- the high-water mark; NULL before the first tick
    last_job_id INTEGER, -- the job of the last SUBMITTED tick (it may be gone since)
    paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    missed INTEGER NOT NULL DEFAULT 0 CHECK (missed >= 0),
    skipped INTEGER NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE jobqueue_schedule_ticks (
    schedule TEXT NOT NULL,
    tick REAL NOT NULL,
    outcome TEXT NOT NULL
        CHECK (outcome IN ('submitted', 'recorded', 'overlap_skipped', 'paused')),
    job_id INTEGER,
    PRIMARY KEY (schedule, tick)
) WITHOUT ROWID;
