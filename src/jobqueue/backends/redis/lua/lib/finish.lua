-- An attempt's end: back in line, or finished (completed, failed, cancelled); a job
-- deleted; a finished job retried.

-- Back to WAITING (or DELAYED until run_at) at the end of the line, like a new submission,
-- writing `key` = `value` too when given. The lease token stays (see field k); recovery,
-- whose holder must stay fenced, deletes it first. Returns the new state letter.
local function requeue(id, run_at, key, value)
  local j = job_key(id)
  local f = redis.call('HMGET', j, 'n', 'p', 's')
  local name = f[1]
  local state = tonumber(run_at) > NOW and 'd' or 'w'
  move_count(name, f[3], state)
  local seq = next_seq()
  if key then
    redis.call('HSET', j, 's', state, 'r', run_at, 'q', seq, key, value)
  else
    redis.call('HSET', j, 's', state, 'r', run_at, 'q', seq)
  end
  if state == 'd' then
    redis.call('ZADD', K_DELAYED, run_at, id)
  else
    make_ready(id, name, tonumber(f[2]) or 0)
  end
  signal(name)
  return state
end

-- wait_for_finish registers waiters in field w; wake exactly that many.
local function notify_waiters(id, count)
  local waiting = tonumber(count)
  if waiting and waiting > 0 then
    local k = done_key(id)
    for _ = 1, math.min(waiting, 1000) do redis.call('LPUSH', k, '1') end
    redis.call('EXPIRE', k, 300)
  end
end

local function forget_unique(id, unique)
  if unique and redis.call('HGET', K_UNIQUE, unique) == id then
    redis.call('HDEL', K_UNIQUE, unique)
  end
end

-- COMPLETED, FAILED or CANCELLED with `key` (R or E, or nil) set to `value`, in one write.
-- `job` is the {token, name, unique key, waiter count} that `held` returned. With `reserve`,
-- the sequence number after the finish's is taken too (see next_seq).
local function finish(id, state, job, key, value, reserve, outcome)
  local j = job_key(id)
  move_count(job[2], job[6] or field(id, 's'), state)
  local hash = {'s', state, 'e', NOWS}
  if key then
    hash[5], hash[6] = key, value
  end
  if outcome then -- mark_outcome, in the same write
    hash[#hash + 1] = 'K'
    hash[#hash + 1] = outcome
  end
  redis.call('HSET', j, unpack(hash))
  redis.call('HDEL', j, 'q', 'w') -- k stays: it answers a repeat of this call
  local seq
  if reserve and not reserved_seq then
    reserved_seq = redis.call('INCRBY', K_SEQ, 2)
    seq = reserved_seq - 1
  else
    seq = next_seq()
  end
  -- Finished sets are scored by finishing order, so retention drops oldest-finished first.
  redis.call('ZADD', finished_key(state), seq, id)
  forget_unique(id, job[3])
  notify_waiters(id, job[4])
end

-- Delete a job and every trace of it, whatever its state (also tolerates foreign data).
local function drop_job(id)
  local f = fields(id, 'n', 's', 'p', 'u', 'w') or {}
  local name, state = f[1], f[2]
  local finished = state == 'c' or state == 'f' or state == 'x'
  if name and not (state == 'd' or state == 'a' or finished) then
    unready(id, name, f[3])
  end
  redis.call('ZREM', K_DELAYED, id)
  drop_lease(id, name)
  redis.call('ZREM', finished_key('c'), id)
  redis.call('ZREM', finished_key('f'), id)
  redis.call('ZREM', finished_key('x'), id)
  forget_unique(id, f[4])
  notify_waiters(id, f[5])
  tally(name, state, -1)
  return redis.call('DEL', job_key(id), log_key(id))
end

-- COMPLETED with its result, the lease's holder `job` (from held): the lease dropped, room
-- made in the history for the completion's implicit record, 'K' marking complete as the
-- call that ended the lease (see mark_outcome). `reserve` as finish's.
local function complete_held(id, job, result, reserve)
  drop_lease(id, job[2])
  record_completion(id, job[7])
  finish(id, 'c', job, 'R', result, reserve, 'c')
  count_outcome('c')
end

-- A held job's failed attempt (`job` as `held` returned it, the lease already dropped):
-- CANCELLED when a cancel was requested (never run again), else FAILED without `retry_at`
-- ('') or back in line for it (a time argument, see `at`). Returns the new state letter.
local function fail_held(id, job, err, retry_at)
  if job[5] == '1' then
    record_attempt(id, 'cancelled', err)
    finish(id, 'x', job, 'E', err)
    count_outcome('x')
    return 'x'
  elseif retry_at == '' then
    record_attempt(id, 'failed', err)
    finish(id, 'f', job, 'E', err)
    count_outcome('f')
    return 'f'
  end
  record_attempt(id, 'retried', err)
  count_outcome('r')
  return requeue(id, at(retry_at), 'E', err)
end

-- A FAILED or CANCELLED job back to WAITING now (see Backend.retry): counts from 0, cancel
-- request, result and finished_at cleared; error and history kept. The token the last lease
-- left (field k) goes too: a late repeat of that attempt's fail or release must not take
-- this new life of the job for its own. Returns 'ok', 'state'
-- (it is in another state) or 'unique' and the id of the live job that holds its key.
local function retry_job(id)
  local f = fields(id, 's', 'u')
  local state = f and f[1]
  if state ~= 'f' and state ~= 'x' then return 'state' end
  local unique = f[2]
  if unique then
    local holder = redis.call('HGET', K_UNIQUE, unique)
    if holder and holder ~= id then
      local held_state = field(holder, 's')
      if held_state == 'w' or held_state == 'd' or held_state == 'a' then
        return 'unique', holder
      end
    end
    redis.call('HSET', K_UNIQUE, unique, id)
  end
  redis.call('ZREM', finished_key(state), id)
  redis.call('HDEL', job_key(id), 'm', 'x', 'C', 'R', 'e', 'k')
  requeue(id, NOWS)
  return 'ok'
end
