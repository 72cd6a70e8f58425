-- finished attempts per minute by outcome (throughput)
--
-- Version 5: finished attempts per minute by outcome (``Reads.outcome_counts``, for throughput
-- charts). The transition that finishes an attempt counts it in its own transaction (one
-- upsert per outcome kind); ``maintain`` deletes the minutes older than the policy keeps, so
-- the table holds at most a day and an hour of minutes, four rows each. The primary key leads
-- with the minute, so both the upsert and the trimming are seeks; WITHOUT ROWID keeps each row
-- in the key itself. A new table with its constraints is O(1) in the number of jobs.
CREATE TABLE jobqueue_outcomes (
    minute INTEGER NOT NULL, -- floor(unix seconds / 60) on the backend's clock
    outcome TEXT NOT NULL CHECK (outcome IN ('completed', 'failed', 'retried', 'cancelled')),
    count INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, outcome)
) WITHOUT ROWID;
