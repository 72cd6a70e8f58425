-- the jobs each dispatcher holds, as its last heartbeat said
--
-- Version 3: the job ids a dispatcher reported in its last heartbeat (``DispatcherInfo.jobs``).
--
-- They cannot be derived from ``jobqueue_jobs.dispatcher``: that column names the dispatcher
-- that *claimed* a job, while a heartbeat reports the leases its sender holds now (claimed
-- ahead, running, or finished and not yet recorded), which the contract keeps apart. Adding a
-- column with a constant default is O(1) in SQLite: existing rows are not rewritten.
-- A JSON list of job ids, like ``names`` a JSON list of worker names.
ALTER TABLE jobqueue_dispatchers ADD COLUMN jobs TEXT NOT NULL DEFAULT '[]';
