-- flows: the blocked state and each job's flow, dependencies, dependents and their outcomes
--
-- Version 5: workflows (``queue.submit_flow``). A job of a flow names its flow (``flow_id``:
-- the id of the flow's first job), the jobs it waits for and the jobs waiting for it
-- (``depends_on``, ``dependents``: JSON lists of ``[job_id, on_failure]``) and what each
-- dependency delivered (``dependency_outcomes``: a JSON object by job id), JSON text like the
-- other JSON columns (decoded by jobqueue, kept byte for byte). All four are NULL for a job of
-- no flow: its insert leaves them out, and a column added without a default rewrites no row,
-- so ordinary jobs cost nothing more. A job waiting for its dependencies is ``blocked``: live
-- (it holds its unique key: ``jobqueue_unique`` and ``jobqueue_submit``'s holder lookup list
-- it), listed in order (``jobqueue_blocked``), never claimed, promoted or expired.
-- ``jobqueue_flow`` lists a flow's jobs (the CLI), holding only jobs of one. The state's CHECK
-- is replaced (one read of the table to validate it) and the unique index rebuilt (one pass
-- over the jobs with a key), both under this transaction's lock on the table.
--
-- ``jobqueue_apply_held`` (migration 4) returns the flow columns of the jobs it claims too (a
-- job of a flow reads its dependencies' outcomes), so it is made anew, with them as its last
-- columns: a process of the version before, still running while another upgrades, reads the
-- columns it knows where they were. A change of a flow's job (a delivery, a move into or out
-- of ``blocked``) never goes through it (``one_step``).
ALTER TABLE jobqueue_jobs
    ADD COLUMN flow_id text,
    ADD COLUMN depends_on text,
    ADD COLUMN dependents text,
    ADD COLUMN dependency_outcomes text,
    DROP CONSTRAINT jobqueue_jobs_state_check,
    ADD CONSTRAINT jobqueue_jobs_state_check CHECK (
        state IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled', 'blocked')
    );
DROP INDEX jobqueue_unique;
CREATE UNIQUE INDEX jobqueue_unique ON jobqueue_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('waiting', 'delayed', 'active', 'blocked');
CREATE INDEX jobqueue_blocked ON jobqueue_jobs (seq) WHERE state = 'blocked';
CREATE INDEX jobqueue_flow ON jobqueue_jobs (flow_id) WHERE flow_id IS NOT NULL;

-- jobqueue_submit as migration 3 made it, a blocked job among the live holders of a key.
CREATE OR REPLACE FUNCTION jobqueue_submit(
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
                    AND j.state IN ('active', 'blocked', 'delayed', 'waiting');
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

-- jobqueue_apply_held as migration 4 made it, returning the flow columns of a claimed job.
DROP FUNCTION jobqueue_apply_held(
    bigint[], text[], boolean[], smallint[], text[], float8[], bigint[], bigint[], smallint[],
    boolean[], float8[], boolean[], text[], boolean[], text[], text[], text[], boolean[],
    text[], boolean[], text[], float8, integer, text[], integer[], integer, boolean, float8,
    text, text[], integer, integer, integer
);
CREATE FUNCTION jobqueue_apply_held(
    p_ids bigint[], p_tokens text[], p_expired boolean[], p_cancel_guard smallint[],
    p_to text[], p_delay float8[], p_attempts bigint[], p_stalls bigint[], p_cancel smallint[],
    p_set_finished boolean[], p_finished_at float8[], p_set_result boolean[], p_result text[],
    p_set_error boolean[], p_error text[], p_outcome text[], p_ended_error text[],
    p_counted boolean[], p_ends_lease text[], p_fence boolean[], p_counts_as text[],
    p_now float8, p_history_keep integer,
    p_names text[], p_caps integer[], p_limit integer, p_unless_conflict boolean,
    p_lease float8, p_dispatcher text, p_claim_tokens text[], p_lock_class integer,
    p_lock_object integer, p_promote_max integer
) RETURNS TABLE (
    o_n integer, o_now float8, o_promoted integer, o_token text, o_ended text,
    o_id bigint, o_name text, o_state text, o_priority bigint, o_attempts bigint,
    o_attempts_made bigint, o_stalls bigint, o_backoff text, o_timeout float8,
    o_unique_key text, o_created_at float8, o_run_at float8, o_started_at float8,
    o_finished_at float8, o_progress float8, o_progress_message text, o_title text,
    o_data text, o_result text, o_error text, o_cancel_requested smallint, o_dispatcher text,
    o_history text, o_lease_expires_at float8, o_log_at float8[], o_log_message text[],
    o_waiting_seq bigint, o_claim_seconds float8, o_flow_id text, o_depends_on text,
    o_dependents text, o_dependency_outcomes text
) LANGUAGE plpgsql SET search_path FROM CURRENT SET lock_timeout = '30s' AS $$
DECLARE
    v_now float8;
    v_seq bigint;
    v_count integer := coalesce(cardinality(p_ids), 0);
    v_written bigint[];
    v_limit integer := p_limit;
    v_due bigint[];
    v_promoted integer := 0;
    v_open text[];
    v_room integer[];
    v_claim_started timestamptz;
    v_claim_seconds float8;
BEGIN
    IF p_limit > 0 AND EXISTS (SELECT FROM unnest(p_caps) AS cap WHERE cap IS NOT NULL) THEN
        -- a cap counts active jobs, then claims more: writers of caps take turns
        PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_object);
    END IF;
    v_now := coalesce(p_now, extract(epoch FROM clock_timestamp())::float8);
    v_seq := nextval('jobqueue_seq_blocks') - 1; -- this transaction's block of order numbers

    IF v_count > 0 THEN
        IF v_count > 1 THEN -- rows locked in id order, as a heartbeat locks them: no deadlock
            PERFORM 1 FROM jobqueue_jobs WHERE id = ANY(p_ids) ORDER BY id FOR UPDATE;
        END IF;
        WITH c AS (
            SELECT * FROM unnest(p_ids, p_tokens, p_expired, p_cancel_guard, p_to, p_delay,
                p_attempts, p_stalls, p_cancel, p_set_finished, p_finished_at, p_set_result,
                p_result, p_set_error, p_error, p_outcome, p_ended_error, p_counted,
                p_ends_lease, p_fence, p_counts_as)
            WITH ORDINALITY AS c(id, token, expired, cancel_guard, to_state, delay, attempts,
                stalls, cancel, set_finished, finished_at, set_result, result, set_error,
                error, outcome, ended_error, counted, ends_lease, fence, counts_as, i)
        ), moved AS (
            UPDATE jobqueue_jobs AS j SET
                state = c.to_state,
                run_at = CASE WHEN c.to_state IN ('waiting', 'delayed') AND c.delay IS NOT NULL
                    THEN v_now + c.delay ELSE j.run_at END,
                seq = CASE WHEN c.to_state IN ('waiting', 'delayed', 'completed', 'failed',
                    'cancelled') THEN v_seq + c.i ELSE j.seq END,
                lease_token = CASE WHEN c.to_state <> 'active' THEN NULL ELSE j.lease_token END,
                lease_expires_at = CASE WHEN c.to_state <> 'active' THEN NULL
                    ELSE j.lease_expires_at END,
                dispatcher = CASE WHEN c.to_state <> 'active' OR c.outcome IS NOT NULL THEN NULL
                    ELSE j.dispatcher END,
                attempts_made = coalesce(c.attempts, CASE WHEN c.outcome IS NOT NULL
                    AND NOT c.counted THEN greatest(j.attempts_made - 1, 0) END,
                    j.attempts_made),
                stalls = coalesce(c.stalls, j.stalls),
                cancel_requested = coalesce(c.cancel, j.cancel_requested),
                finished_at = CASE WHEN c.to_state IN ('completed', 'failed', 'cancelled')
                    THEN v_now WHEN c.set_finished THEN c.finished_at ELSE j.finished_at END,
                result = CASE WHEN c.set_result THEN c.result ELSE j.result END,
                error = CASE WHEN c.set_error THEN c.error ELSE j.error END,
                history = CASE WHEN c.outcome IS NULL THEN j.history ELSE jobqueue_history_with(
                    j.history,
                    '{"number":' || j.attempts_made || ',"dispatcher":'
                        || coalesce(to_json(j.dispatcher)::text, 'null')
                        || ',"started_at":' || coalesce(j.started_at::text, 'null')
                        || ',"finished_at":' || v_now::text
                        || ',"outcome":' || to_json(c.outcome)::text
                        || ',"error":' || coalesce(c.ended_error, 'null') || '}',
                    p_history_keep) END,
                ended_lease = CASE WHEN c.fence THEN NULL
                    WHEN c.ends_lease IS NOT NULL AND c.to_state <> 'active'
                    THEN c.ends_lease || ' ' || j.lease_token ELSE j.ended_lease END
            FROM c
            WHERE j.id = c.id AND j.state = 'active' AND j.lease_token = c.token
                AND CASE WHEN c.expired
                    THEN j.lease_expires_at IS NULL OR j.lease_expires_at <= v_now
                    ELSE j.lease_expires_at > v_now END
                AND (c.cancel_guard IS NULL OR j.cancel_requested = c.cancel_guard)
            RETURNING c.i, c.counts_as
        ), counted AS (
            INSERT INTO jobqueue_outcomes AS o (minute, outcome, count)
                SELECT floor(v_now / 60)::bigint, moved.counts_as, count(*) FROM moved
                WHERE moved.counts_as IS NOT NULL GROUP BY moved.counts_as
            ON CONFLICT (minute, outcome) DO UPDATE SET count = o.count + excluded.count
        )
        SELECT coalesce(array_agg(moved.i), '{}') INTO v_written FROM moved;
        v_seq := v_seq + v_count;
        IF cardinality(v_written) < v_count THEN -- the rows of the changes not written, as found
            RETURN QUERY
                SELECT -c.i::integer, v_now, NULL::integer, j.lease_token, j.ended_lease,
                    j.id, j.name, j.state, j.priority, j.attempts, j.attempts_made, j.stalls,
                    j.backoff, j.timeout, j.unique_key, j.created_at, j.run_at, j.started_at,
                    j.finished_at, j.progress, j.progress_message, j.title, j.data, j.result,
                    j.error, j.cancel_requested, j.dispatcher, j.history, j.lease_expires_at,
                    NULL::float8[], NULL::text[], NULL::bigint, NULL::float8, j.flow_id,
                    j.depends_on, j.dependents, j.dependency_outcomes
                FROM unnest(p_ids, p_tokens) WITH ORDINALITY AS c(id, token, i)
                LEFT JOIN jobqueue_jobs AS j ON j.id = c.id
                WHERE c.i <> ALL(v_written);
            IF p_unless_conflict THEN
                v_limit := 0; -- a repeat or a lost lease hands out no next job
            END IF;
        END IF;
    END IF;

    IF p_names IS NOT NULL AND v_limit > 0 THEN
        -- due delayed jobs count as ready: to waiting, at the end of the line in due order
        SELECT array_agg(d.id ORDER BY d.run_at, d.seq) INTO v_due FROM (
            SELECT id, run_at, seq FROM jobqueue_jobs WHERE state = 'delayed'
                AND run_at <= v_now ORDER BY run_at, seq LIMIT p_promote_max
                FOR UPDATE SKIP LOCKED) AS d;
        IF v_due IS NOT NULL THEN
            UPDATE jobqueue_jobs AS j SET state = 'waiting', seq = v_seq + d.k
                FROM unnest(v_due) WITH ORDINALITY AS d(id, k) WHERE j.id = d.id;
            v_promoted := cardinality(v_due);
            v_seq := v_seq + v_promoted;
        END IF;
        -- the names served that are not paused, each with its room under its cap
        SELECT array_agg(o.name ORDER BY o.k), array_agg(o.room ORDER BY o.k)
            INTO v_open, v_room FROM (
                SELECT n.name, n.k, CASE WHEN n.cap IS NULL THEN v_limit ELSE least(v_limit,
                    n.cap - (SELECT count(*) FROM jobqueue_jobs AS a
                        WHERE a.state = 'active' AND a.name = n.name)::integer) END AS room
                FROM unnest(p_names, p_caps) WITH ORDINALITY AS n(name, cap, k)
                WHERE NOT EXISTS (SELECT FROM jobqueue_paused AS p WHERE p.name = n.name)
            ) AS o WHERE o.room > 0;
        IF v_open IS NOT NULL THEN
            -- each open name's first jobs (a seek in jobqueue_waiting, locked as read,
            -- skipping other claims' rows), the first v_limit of them in run order; timed,
            -- and each job's seq while it waited returned, for the store's claim cursor (a
            -- slow claim means dead index entries: the store then claims by seeking)
            v_claim_started := clock_timestamp();
            RETURN QUERY
                WITH picked AS (
                    SELECT h.id, h.priority, h.seq
                    FROM unnest(v_open, v_room) AS o(name, room) CROSS JOIN LATERAL (
                        SELECT w.id, w.priority, w.seq FROM jobqueue_jobs AS w
                        WHERE w.state = 'waiting' AND w.name = o.name
                        ORDER BY w.priority DESC, w.seq LIMIT o.room FOR UPDATE SKIP LOCKED
                    ) AS h
                    ORDER BY h.priority DESC, h.seq LIMIT v_limit
                ), head AS (
                    SELECT id, seq AS waiting_seq,
                        row_number() OVER (ORDER BY priority DESC, seq) AS k FROM picked
                ), claimed AS (
                    UPDATE jobqueue_jobs AS j SET state = 'active',
                        attempts_made = j.attempts_made + 1, started_at = v_now,
                        lease_token = p_claim_tokens[head.k], lease_expires_at = v_now + p_lease,
                        seq = v_seq + head.k, dispatcher = p_dispatcher, ended_lease = NULL
                    FROM head WHERE j.id = head.id
                    RETURNING head.k, j.id, j.name, j.state, j.priority, j.attempts,
                        j.attempts_made, j.stalls, j.backoff, j.timeout, j.unique_key,
                        j.created_at, j.run_at, j.started_at, j.finished_at, j.progress,
                        j.progress_message, j.title, j.data, j.result, j.error,
                        j.cancel_requested, j.dispatcher, j.history, j.lease_expires_at,
                        j.flow_id, j.depends_on, j.dependents, j.dependency_outcomes,
                        j.lease_token, head.waiting_seq
                )
                SELECT claimed.k::integer, v_now, NULL::integer, claimed.lease_token,
                    NULL::text, claimed.id, claimed.name, claimed.state, claimed.priority,
                    claimed.attempts, claimed.attempts_made, claimed.stalls, claimed.backoff,
                    claimed.timeout, claimed.unique_key, claimed.created_at, claimed.run_at,
                    claimed.started_at, claimed.finished_at, claimed.progress,
                    claimed.progress_message, claimed.title, claimed.data, claimed.result,
                    claimed.error, claimed.cancel_requested, claimed.dispatcher,
                    claimed.history, claimed.lease_expires_at,
                    (SELECT array_agg(l.at ORDER BY l.id) FROM jobqueue_logs AS l
                        WHERE l.job_id = claimed.id),
                    (SELECT array_agg(l.message ORDER BY l.id) FROM jobqueue_logs AS l
                        WHERE l.job_id = claimed.id),
                    claimed.waiting_seq, NULL::float8, claimed.flow_id, claimed.depends_on,
                    claimed.dependents, claimed.dependency_outcomes
                FROM claimed;
            v_claim_seconds := extract(epoch FROM clock_timestamp() - v_claim_started);
        END IF;
    END IF;

    o_n := 0;
    o_now := v_now;
    o_promoted := v_promoted;
    o_claim_seconds := v_claim_seconds;
    RETURN NEXT;
END
$$;
