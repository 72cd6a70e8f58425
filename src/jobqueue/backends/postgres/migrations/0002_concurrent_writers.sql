-- writers that need not take turns: counts without hot rows, the order counter a sequence
--
-- Version 1 had every write transaction take the schema's advisory lock first, because the
-- store read counters and guards, then wrote. From version 2 the hot paths (submits without
-- unique keys, claims, a lease holder's outcomes) run side by side: claims lock their rows
-- as they read them (SKIP LOCKED), guards read their rows FOR UPDATE, and nothing they write
-- is a row every writer updates. The lock stays for the rare rest (``dialect``).
--
-- The order counter (``seq``) is handed out in blocks of 2^20 by a sequence: each write
-- transaction takes one block at its start (its numbers increase within it; a later block
-- sorts after). Job ids stay in jobqueue_meta (the clock floor of ``jobqueue.ids`` needs a
-- compare), reserved for a whole submit by one UPDATE ... RETURNING: only submitters wait on
-- that row, for the rest of their short transaction.
CREATE SEQUENCE jobqueue_seq_blocks AS bigint INCREMENT BY 1048576 MINVALUE 0;
SELECT setval('jobqueue_seq_blocks', (SELECT value FROM jobqueue_meta WHERE key = 'seq'));
DELETE FROM jobqueue_meta WHERE key = 'seq';

-- Counts without hot rows: per-statement deltas, summed on read, folded by maintenance.
--
-- Version 1 kept the counts in a few rows that a row-level trigger updated for every job
-- moved: every writer updated the same rows (a hot row, and in one transaction of many rows
-- a chain of row versions each update walks: a bulk submit of 50,000 jobs slowed to ~1,700/s).
-- Now a statement-level trigger adds one row per (name, state) that the statement changed
-- to jobqueue_count_deltas (the rows it touched seen as transition tables); a count is the
-- sum of its deltas; maintenance (``housekeep``) folds them into one row per (name, state).
-- Nothing is updated in place: concurrent writers append and never wait on each other's rows.
CREATE TABLE jobqueue_count_deltas (
    name text NOT NULL,
    state text NOT NULL,
    n bigint NOT NULL
) WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX jobqueue_count_deltas_state ON jobqueue_count_deltas (state);
INSERT INTO jobqueue_count_deltas (name, state, n)
    SELECT name, state, n FROM jobqueue_name_counts WHERE n <> 0;

DROP TRIGGER jobqueue_count_insert_delete ON jobqueue_jobs;
DROP TRIGGER jobqueue_count_update ON jobqueue_jobs;
DROP FUNCTION jobqueue_count_jobs();
DROP TABLE jobqueue_counts;
DROP TABLE jobqueue_name_counts;

CREATE FUNCTION jobqueue_count_inserted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO jobqueue_count_deltas (name, state, n)
        SELECT name, state, count(*) FROM jobqueue_new GROUP BY name, state;
    RETURN NULL;
END
$$;
CREATE FUNCTION jobqueue_count_deleted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO jobqueue_count_deltas (name, state, n)
        SELECT name, state, -count(*) FROM jobqueue_old GROUP BY name, state;
    RETURN NULL;
END
$$;
CREATE FUNCTION jobqueue_count_updated() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO jobqueue_count_deltas (name, state, n)
        SELECT name, state, sum(n) FROM (
            SELECT o.name, o.state, -1 AS n FROM jobqueue_old o JOIN jobqueue_new w USING (id)
                WHERE o.state IS DISTINCT FROM w.state OR o.name IS DISTINCT FROM w.name
            UNION ALL
            SELECT w.name, w.state, 1 FROM jobqueue_old o JOIN jobqueue_new w USING (id)
                WHERE o.state IS DISTINCT FROM w.state OR o.name IS DISTINCT FROM w.name
        ) moved GROUP BY name, state HAVING sum(n) <> 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobqueue_count_insert AFTER INSERT ON jobqueue_jobs
    REFERENCING NEW TABLE AS jobqueue_new
    FOR EACH STATEMENT EXECUTE FUNCTION jobqueue_count_inserted();
CREATE TRIGGER jobqueue_count_delete AFTER DELETE ON jobqueue_jobs
    REFERENCING OLD TABLE AS jobqueue_old
    FOR EACH STATEMENT EXECUTE FUNCTION jobqueue_count_deleted();
CREATE TRIGGER jobqueue_count_update AFTER UPDATE ON jobqueue_jobs
    REFERENCING OLD TABLE AS jobqueue_old NEW TABLE AS jobqueue_new
    FOR EACH STATEMENT EXECUTE FUNCTION jobqueue_count_updated();
