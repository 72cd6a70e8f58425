-- a submit in one statement: jobqueue_submit stores a batch of jobs server-side
--
-- Until version 2 a submit was a transaction of its own: BEGIN with the id reservation and a
-- block of the order counter, the INSERT, COMMIT -- round trips the client waited on. From
-- version 3 the store calls this function in autocommit, one statement: it reserves the job
-- ids (the clock floor is the caller's, as ``jobqueue.ids`` computes it), takes a block of
-- the order counter, and inserts the rows as given. It decides nothing: the state of each
-- job (waiting or delayed) comes from the caller, which asks ``jobqueue.lifecycle``. It only
-- guards a unique key: with one in the batch it takes the schema's writers' lock first (the
-- advisory lock every exclusive writer takes, before any row lock: whoever holds it never
-- waits for a submitter that waits for it), then returns the live holder of a key instead of
-- storing its job (the caller marks it deduplicated).
--
-- Parameters: the schema's lock key (two ints, ``dialect.lock_key``), the clock floor of the
-- last id, whether a job of the batch has a unique key, the jobs (a JSON array of objects,
-- one key per column given: json_to_recordset reads a missing one as NULL; JSON text columns
-- are JSON strings, kept byte for byte) and their logs, or NULL (objects of j: the job's
-- place in the batch, 1-based, at and message). One text parameter each, encoded by Python's
-- C JSON encoder and parsed by PostgreSQL's in C: a batch of 5,000 costs no per-value work in
-- the driver (as 22 arrays of parameters did). Rows returned: one per
-- deduplicated job (n, its holder as a jobqueue_jobs row, the holder's logs), then one with
-- n = 0: the last id reserved (the n-th job, 1-based, has last - count + n), the first order
-- number (the n-th job's is first + n - 1) and the server's clock.
CREATE FUNCTION jobqueue_submit(
    lock_class integer, lock_object integer, id_floor bigint, keyed boolean, jobs json,
    logs json
) RETURNS TABLE (
    n integer, last_id bigint, first_seq bigint, server_now float8, holder jobqueue_jobs,
    log_at float8[], log_message text[]
) LANGUAGE plpgsql SET search_path FROM CURRENT SET lock_timeout = '30s' AS $$
DECLARE
    total integer := json_array_length(jobs);
    last bigint;
    block bigint;
    job record;
    live jobqueue_jobs;
BEGIN
    IF keyed THEN
        PERFORM pg_advisory_xact_lock(lock_class, lock_object);
    END IF;
    UPDATE jobqueue_meta SET value = greatest(value + total, id_floor) WHERE key = 'job_id'
        RETURNING value INTO last;
    block := nextval('jobqueue_seq_blocks');
    IF NOT keyed THEN
        INSERT INTO jobqueue_jobs (id, name, state, priority, seq, run_at, unique_key,
            attempts, attempts_made, stalls, created_at, started_at, finished_at, progress,
            progress_message, title, timeout, backoff, data, result, error, cancel_requested,
            dispatcher, history)
        SELECT last - total + r.i, r.name, r.state, r.priority, block + r.i - 1, r.run_at,
            r.unique_key, r.attempts, r.attempts_made, r.stalls, r.created_at, r.started_at,
            r.finished_at, r.progress, r.progress_message, r.title, r.timeout, r.backoff,
            r.data, r.result, r.error, r.cancel_requested, r.dispatcher, r.history
        FROM ROWS FROM (json_to_recordset(jobs) AS (
            name text, state text, priority bigint, run_at float8, unique_key text,
            attempts bigint, attempts_made bigint, stalls bigint, created_at float8,
            started_at float8, finished_at float8, progress float8, progress_message
            text, title text, timeout float8, backoff text, data text, result text,
            error text, cancel_requested smallint, dispatcher text, history text))
            WITH ORDINALITY AS r(name, state,
            priority, run_at, unique_key, attempts, attempts_made, stalls, created_at,
            started_at, finished_at, progress, progress_message, title, timeout, backoff, data,
            result, error, cancel_requested, dispatcher, history, i);
    ELSE
        -- In order, one row at a time: a key taken earlier in the batch is held when a
        -- later job of the batch asks for it.
        FOR job IN SELECT * FROM ROWS FROM (json_to_recordset(jobs) AS (
            name text, state text, priority bigint, run_at float8, unique_key text,
            attempts bigint, attempts_made bigint, stalls bigint, created_at float8,
            started_at float8, finished_at float8, progress float8, progress_message
            text, title text, timeout float8, backoff text, data text, result text,
            error text, cancel_requested smallint, dispatcher text, history text))
            WITH ORDINALITY AS r(name, state, priority, run_at, unique_key, attempts,
            attempts_made, stalls, created_at, started_at, finished_at, progress,
            progress_message, title, timeout, backoff, data, result, error, cancel_requested,
            dispatcher, history, i) ORDER BY r.i
        LOOP
            IF job.unique_key IS NOT NULL THEN
                SELECT * INTO live FROM jobqueue_jobs AS j WHERE j.unique_key = job.unique_key
                    AND j.state IN ('active', 'delayed', 'waiting');
                IF FOUND THEN
                    n := job.i;
                    holder := live;
                    SELECT array_agg(l.at ORDER BY l.id), array_agg(l.message ORDER BY l.id)
                        INTO log_at, log_message FROM jobqueue_logs AS l WHERE l.job_id = live.id;
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            INSERT INTO jobqueue_jobs (id, name, state, priority, seq, run_at, unique_key,
                attempts, attempts_made, stalls, created_at, started_at, finished_at, progress,
                progress_message, title, timeout, backoff, data, result, error,
                cancel_requested, dispatcher, history)
            VALUES (last - total + job.i, job.name, job.state, job.priority, block + job.i - 1,
                job.run_at, job.unique_key, job.attempts, job.attempts_made, job.stalls,
                job.created_at, job.started_at, job.finished_at, job.progress,
                job.progress_message, job.title, job.timeout, job.backoff, job.data, job.result,
                job.error, job.cancel_requested, job.dispatcher, job.history);
        END LOOP;
    END IF;
    IF logs IS NOT NULL THEN  -- the logs of the jobs stored (not a holder's)
        INSERT INTO jobqueue_logs (job_id, at, message)
        SELECT last - total + g.j, g.at, g.message
        FROM json_to_recordset(logs) AS g(j integer, at float8, message text)
        WHERE EXISTS (SELECT FROM jobqueue_jobs AS s WHERE s.id = last - total + g.j);
    END IF;
    n := 0;
    last_id := last;
    first_seq := block;
    server_now := extract(epoch FROM clock_timestamp());
    holder := NULL;
    log_at := NULL;
    log_message := NULL;
    RETURN NEXT;
END
$$;
