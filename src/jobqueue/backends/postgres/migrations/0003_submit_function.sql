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
-- last id, then one array per column, the n-th element the n-th job's, then the jobs' logs
-- (three arrays: the job's place in the batch, 1-based, the time, the message). Rows returned: one per
-- deduplicated job (n, its holder as a jobqueue_jobs row, the holder's logs), then one with
-- n = 0: the last id reserved (the n-th job, 1-based, has last - count + n), the first order
-- number (the n-th job's is first + n - 1) and the server's clock.
CREATE FUNCTION jobqueue_submit(
    lock_class integer, lock_object integer, id_floor bigint,
    a_name text[], a_state text[], a_priority bigint[], a_run_at float8[], a_unique_key text[],
    a_attempts bigint[], a_attempts_made bigint[], a_stalls bigint[], a_created_at float8[],
    a_started_at float8[], a_finished_at float8[], a_progress float8[],
    a_progress_message text[], a_title text[], a_timeout float8[], a_backoff text[],
    a_data text[], a_result text[], a_error text[], a_cancel_requested smallint[],
    a_dispatcher text[], a_history text[],
    a_log_job integer[], a_log_at float8[], a_log_message text[]
) RETURNS TABLE (
    n integer, last_id bigint, first_seq bigint, server_now float8, holder jobqueue_jobs,
    log_at float8[], log_message text[]
) LANGUAGE plpgsql SET search_path FROM CURRENT SET lock_timeout = '30s' AS $$
DECLARE
    total integer := coalesce(cardinality(a_name), 0);
    keyed boolean := cardinality(array_remove(a_unique_key, NULL)) > 0;
    last bigint;
    block bigint;
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
        FROM unnest(a_name, a_state, a_priority, a_run_at, a_unique_key, a_attempts,
            a_attempts_made, a_stalls, a_created_at, a_started_at, a_finished_at, a_progress,
            a_progress_message, a_title, a_timeout, a_backoff, a_data, a_result, a_error,
            a_cancel_requested, a_dispatcher, a_history) WITH ORDINALITY AS r(name, state,
            priority, run_at, unique_key, attempts, attempts_made, stalls, created_at,
            started_at, finished_at, progress, progress_message, title, timeout, backoff, data,
            result, error, cancel_requested, dispatcher, history, i);
    ELSE
        -- In order, one row at a time: a key taken earlier in the batch is held when a
        -- later job of the batch asks for it.
        FOR i IN 1..total LOOP
            IF a_unique_key[i] IS NOT NULL THEN
                SELECT * INTO live FROM jobqueue_jobs AS j WHERE j.unique_key = a_unique_key[i]
                    AND j.state IN ('active', 'delayed', 'waiting');
                IF FOUND THEN
                    n := i;
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
            VALUES (last - total + i, a_name[i], a_state[i], a_priority[i], block + i - 1,
                a_run_at[i], a_unique_key[i], a_attempts[i], a_attempts_made[i], a_stalls[i],
                a_created_at[i], a_started_at[i], a_finished_at[i], a_progress[i],
                a_progress_message[i], a_title[i], a_timeout[i], a_backoff[i], a_data[i],
                a_result[i], a_error[i], a_cancel_requested[i], a_dispatcher[i],
                a_history[i]);
        END LOOP;
    END IF;
    IF cardinality(a_log_job) > 0 THEN  -- the logs of the jobs stored (not a holder's)
        INSERT INTO jobqueue_logs (job_id, at, message)
        SELECT last - total + g.j, g.at, g.message
        FROM unnest(a_log_job, a_log_at, a_log_message) AS g(j, at, message)
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
