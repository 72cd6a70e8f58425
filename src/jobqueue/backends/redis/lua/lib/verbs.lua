-- The old verbs' own rules (complete.lua, fail.lua, release.lua, finish_cancelled.lua,
-- finish_many.lua, cancel*.lua, retry*.lua, promote.lua, recover.lua, maintain.lua...): what
-- becomes of a job, decided in Lua. The storage seam's scripts (apply.lua, idle.lua and the
-- rest) use none of it: they reach `maintain` through `claim` only after marking it done
-- (`maintained`), as the old verbs' claims' inline stall recovery is not theirs. At the
-- switch to the seam this file goes with those scripts: delete it and its LIB_FILES entry,
-- and drop the `maintain()` call from `claim` (lib/claim.lua).

-- Append the record of the attempt that just ended to the job's history (field H, see
-- with_attempt) and forget its dispatcher.
local function record_attempt(id, outcome, err)
  local f = fields(id, 'm', 'D', 'b', 'H')
  if not f then return end
  redis.call('HSET', job_key(id), 'H', with_attempt(f[4], f[1], f[2], f[3], outcome, err))
  redis.call('HDEL', job_key(id), 'D')
end

-- Make room in the job's H for a completion's implicit record (see room_for_completion).
local function record_completion(id, history)
  if not history then return end
  local kept = room_for_completion(history)
  if not kept then
    redis.call('HDEL', job_key(id), 'H')
  elseif kept ~= history then
    redis.call('HSET', job_key(id), 'H', kept)
  end
end

-- For a call whose lease is gone: the state the token's own earlier call of the same `kind`
-- left (one of the letters in `states`) -- the job still carries its token in k and the
-- call's kind in K -- else nil. Marked (lost reply) and unmarked repeats alike: outcomes are
-- idempotent per lease token. A kind that differs (complete after fail) is refused; a job
-- finished before K existed has none and is judged by its state alone.
local function repeated(id, token, states, kind)
  local f = fields(id, 's', 'k', 'K')
  if not f or f[2] ~= token or type(f[1]) ~= 'string' then return nil end
  if f[3] and f[3] ~= kind then return nil end
  if not string.find(states, f[1], 1, true) then return nil end
  return f[1]
end

-- Which call ended the token's lease ('c' complete, 'f' fail, 'r' release, 'x'
-- finish_cancelled), so a repeat of a different call is refused. Only meaningful while k
-- still holds that token: a claim replaces k and a recovery or retry deletes it.
local function mark_outcome(id, kind)
  redis.call('HSET', job_key(id), 'K', kind)
end

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

-- lifecycle.stalled_error's JSON with the stall count put in (the text is written once,
-- there).
local function stalled_error(stalls) return ARGV[TAIL + 4] .. stalls .. ARGV[TAIL + 5] end

-- The list `P stalled`: ids of the jobs recover() ended a lease of, oldest first, until
-- take_recovered reports them (maintain.lua, recover.lua) -- whichever call recovered them,
-- a claim included, so each recovery reaches one dispatcher's jobqueue_job_stalled. At most
-- this many are kept when nobody maintains.
local RECOVERED_KEPT = 10000

-- Expired leases go back to waiting (a stall counted) or fail past max_stalls -- or end
-- CANCELLED when a cancel was requested; in claim order, like the reference backend.
local function recover()
  local ids = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', NOWS, 'LIMIT', 0, BATCH)
  if #ids == 0 then return 0 end
  local order = {}
  for i, id in ipairs(ids) do order[i] = {id, tonumber(field(id, 'q')) or 0} end
  table.sort(order, function(a, b) return a[2] < b[2] end)
  local recovered = {}
  for _, entry in ipairs(order) do
    local id = entry[1]
    drop_lease(id, field(id, 'n'))
    if is_job(id) then
      recovered[#recovered + 1] = id
      redis.call('HDEL', job_key(id), 'k') -- the expired holder is fenced, repeat or not
      local stalls = incr_field(id, 'x', 1)
      record_attempt(id, 'stalled', nil)
      if field(id, 'C') == '1' then
        finish(id, 'x', fields(id, 'k', 'n', 'u', 'w'))
        count_outcome('x')
      elseif stalls > MAX_STALLS then
        finish(id, 'f', fields(id, 'k', 'n', 'u', 'w'), 'E', stalled_error(stalls))
        count_outcome('f')
      else
        requeue(id, NOWS)
        count_outcome('r')
      end
    end
  end
  if #recovered > 0 then
    local kept = redis.call('RPUSH', P .. 'stalled', unpack(recovered))
    if kept > RECOVERED_KEPT then redis.call('LTRIM', P .. 'stalled', -RECOVERED_KEPT, -1) end
  end
  return #ids
end

-- Take up to BATCH ids from the list `P stalled` (see RECOVERED_KEPT): the jobs as they are
-- now (a removed one left out), and whether more are listed. A reply lost on the way loses
-- these reports (not the recoveries): a repeat cannot tell what the first run took.
local function take_recovered()
  local k = P .. 'stalled'
  local ids = redis.call('LRANGE', k, 0, BATCH - 1)
  if #ids == 0 then return {}, false end
  redis.call('LTRIM', k, #ids, -1)
  local jobs = {}
  for _, id in ipairs(ids) do
    if is_job(id) then jobs[#jobs + 1] = snapshot(id) end
  end
  return jobs, #ids >= BATCH
end

-- What every claim and idle poll does first (reads never do): tidy, with the old verbs'
-- inline stall recovery (recover) -- the one place it is called from. Returns how many jobs
-- it moved or removed.
local function maintain()
  if maintained then return 0 end -- once a call: a batch of claims shares one look
  maintained = true
  return promote() + recover() + retention()
end
