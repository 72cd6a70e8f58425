-- the waiting jobs of every name in run order (listings)
--
-- Version 8: the waiting jobs of every name in run order (priority, then age), as
-- ``list_jobs(WAITING)`` and queue latency read them. ``jobqueue_waiting`` leads with the name
-- (claims are per name), so a listing across names sorted the whole waiting set: 60 ms for a
-- page with a million jobs waiting. Building the index is one pass over the waiting rows.
CREATE INDEX jobqueue_waiting_order ON jobqueue_jobs (priority DESC, seq)
    WHERE state = 'waiting';
