-- Shared prelude, prepended by backend.py to every script (Redis has no `require`).
--
-- Every script is called with KEYS[1] = the namespace's id counter (so Redis Cluster routes
-- it to the shard owning the namespace's hash tag) and this ARGV header:
--   1 key prefix "jq:{ns}:"   2 now (a Python float repr: exact, never re-formatted by Lua)
--   3 max_stalls              4 completed cutoff ('' = keep forever)   5 completed max count (-1)
--   6 failed cutoff ('')      7 failed max count (-1)
-- Script-specific arguments start at ARGV[8]. All keys derive from the prefix, so they share
-- the hash tag and live on one shard; Redis allows undeclared keys of the script's own slot.
--
-- Job hash fields (short names keep a queued job small):
--   n name  s state (w d a c f)  d data JSON  o options JSON  p priority  u unique key
--   c created_at  r run_at (absent = created_at)  m attempts_made  x stalls  b started_at
--   e finished_at  g progress  G progress message  R result JSON  E error JSON
--   k lease token  q sequence (waiting/delayed: enqueue order; active: claim order)
--   w waiter count
-- Logs live in a separate list (only jobs that log pay for it).

local P = ARGV[1]
local NOWS = ARGV[2]
local NOW = tonumber(NOWS)
local MAX_STALLS = tonumber(ARGV[3])
local K_SEQ = P .. 'q'
local K_DELAYED = P .. 'd'
local K_ACTIVE = P .. 'a'
local K_UNIQUE = P .. 'u'
local K_NAMES = P .. 'N'
local K_ACTIVE_COUNT = P .. 'ac'
local BATCH = 1000 -- housekeeping does at most this much per call, so no call runs long

local function job_key(id) return P .. 'j:' .. id end
local function log_key(id) return P .. 'l:' .. id end
-- Waiting jobs: one list per (name, priority) in enqueue order -- a list entry costs a few
-- bytes where a sorted-set entry costs ~100 -- plus a per-name zset of the priority levels
-- that have waiting jobs.
local function ready_key(name, priority) return P .. 'r:' .. name .. ':' .. priority end
local function levels_key(name) return P .. 'R:' .. name end
local function signal_key(name) return P .. 's:' .. name end
local function done_key(id) return P .. 'x:' .. id end
local function finished_key(state) return P .. state end

-- The job's hash field, or nil when the key is missing or not a hash (foreign data).
local function field(id, name)
  local v = redis.pcall('HGET', job_key(id), name)
  if type(v) == 'table' or v == false then return nil end
  return v
end

local function is_job(id)
  local v = redis.pcall('HLEN', job_key(id))
  return type(v) == 'number' and v > 0
end

-- HINCRBY that survives a corrupt (non-integer) field by starting it over.
local function incr_field(id, name, by)
  local v = redis.pcall('HINCRBY', job_key(id), name, by)
  if type(v) == 'table' then
    redis.call('HSET', job_key(id), name, by)
    return by
  end
  return v
end

local function snapshot(id)
  local fields = redis.pcall('HGETALL', job_key(id))
  if type(fields) == 'table' and fields.err then return {id, 'corrupt'} end
  return {id, fields, redis.call('LRANGE', log_key(id), 0, -1)}
end

-- Wake one dispatcher blocked on this name. The list is bounded: with nobody waiting,
-- pushes pile up to 64 stale wake-ups at most (and the idle poll clears them).
local function signal(name)
  local k = signal_key(name)
  redis.call('LPUSH', k, '1')
  redis.call('LTRIM', k, 0, 63)
end

local function make_ready(id, name, priority)
  redis.call('HSET', job_key(id), 'q', redis.call('INCR', K_SEQ))
  redis.call('RPUSH', ready_key(name, priority), id)
  redis.call('ZADD', levels_key(name), priority, priority)
end

local function priority_of(id) return tonumber(field(id, 'p')) or 0 end

-- Take a waiting job out of its list (O(list length): only removal needs it, never a claim).
local function unready(id, name)
  local level = priority_of(id)
  local k = ready_key(name, level)
  redis.call('LREM', k, 0, id)
  if redis.call('LLEN', k) == 0 then redis.call('ZREM', levels_key(name), level) end
end

-- The next job of one name: {priority, id, seq} or nil. Drops levels left empty.
local function head_of(name)
  for _ = 1, 100 do
    local top = redis.pcall('ZREVRANGE', levels_key(name), 0, 0)
    if type(top) ~= 'table' or top.err or not top[1] then return nil end
    local id = redis.pcall('LINDEX', ready_key(name, top[1]), 0)
    if type(id) == 'string' then return {tonumber(top[1]), id, tonumber(field(id, 'q')) or 0} end
    redis.call('ZREM', levels_key(name), top[1])
  end
  return nil
end

local function waiting_count(name)
  local total = 0
  local levels = redis.pcall('ZRANGE', levels_key(name), 0, -1)
  if type(levels) ~= 'table' or levels.err then return 0 end
  for _, level in ipairs(levels) do
    local n = redis.pcall('LLEN', ready_key(name, level))
    if type(n) == 'number' then total = total + n end
  end
  return total
end

-- Back to WAITING (or DELAYED until run_at) at the end of the line, like a new submission.
local function requeue(id, run_at)
  local j = job_key(id)
  local name = redis.call('HGET', j, 'n')
  redis.call('HSET', j, 'r', run_at)
  if tonumber(run_at) > NOW then
    redis.call('HSET', j, 's', 'd', 'q', redis.call('INCR', K_SEQ))
    redis.call('ZADD', K_DELAYED, run_at, id)
  else
    redis.call('HSET', j, 's', 'w')
    make_ready(id, name, priority_of(id))
  end
  signal(name)
end

-- The lease holds while the token matches and its deadline is still ahead.
local function holds(id, token)
  local deadline = redis.call('ZSCORE', K_ACTIVE, id)
  return deadline and tonumber(deadline) > NOW and field(id, 'k') == token
end

local function drop_lease(id)
  if redis.call('ZREM', K_ACTIVE, id) == 0 then return end
  local name = field(id, 'n')
  if name and redis.call('HINCRBY', K_ACTIVE_COUNT, name, -1) <= 0 then
    redis.call('HDEL', K_ACTIVE_COUNT, name)
  end
  if is_job(id) then redis.call('HDEL', job_key(id), 'k') end
end

-- wait_for_finish registers waiters in field w; wake exactly that many.
local function notify_waiters(id)
  local waiting = tonumber(field(id, 'w'))
  if waiting and waiting > 0 then
    local k = done_key(id)
    for _ = 1, math.min(waiting, 1000) do redis.call('LPUSH', k, '1') end
    redis.call('EXPIRE', k, 300)
    redis.call('HDEL', job_key(id), 'w')
  end
end

local function forget_unique(id)
  local u = field(id, 'u')
  if u and redis.call('HGET', K_UNIQUE, u) == id then redis.call('HDEL', K_UNIQUE, u) end
end

local function finish(id, state)
  local j = job_key(id)
  redis.call('HSET', j, 's', state, 'e', NOWS)
  redis.call('HDEL', j, 'q')
  -- Finished sets are scored by finishing order, so retention drops oldest-finished first.
  redis.call('ZADD', finished_key(state), redis.call('INCR', K_SEQ), id)
  forget_unique(id)
  notify_waiters(id)
end

-- Delete a job and every trace of it, whatever its state (also tolerates foreign data).
local function drop_job(id)
  local name, state = field(id, 'n'), field(id, 's')
  if name and not (state == 'd' or state == 'a' or state == 'c' or state == 'f') then
    unready(id, name)
  end
  redis.call('ZREM', K_DELAYED, id)
  drop_lease(id)
  redis.call('ZREM', finished_key('c'), id)
  redis.call('ZREM', finished_key('f'), id)
  forget_unique(id)
  notify_waiters(id)
  return redis.call('DEL', job_key(id), log_key(id))
end

local function stalled_error(stalls)
  return '{"type":"StalledJobError","message":"job stalled ' .. stalls .. ' times: its lease '
    .. 'expired while running (the worker died, hung or lost its backend connection)",'
    .. '"traceback":""}'
end

-- Expired leases go back to waiting (a stall counted) or fail past max_stalls; in claim
-- order, like the reference backend.
local function recover()
  local ids = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', NOWS, 'LIMIT', 0, BATCH)
  local order = {}
  for i, id in ipairs(ids) do order[i] = {id, tonumber(field(id, 'q')) or 0} end
  table.sort(order, function(a, b) return a[2] < b[2] end)
  for _, entry in ipairs(order) do
    local id = entry[1]
    drop_lease(id)
    if is_job(id) then
      local stalls = incr_field(id, 'x', 1)
      if stalls > MAX_STALLS then
        redis.call('HSET', job_key(id), 'E', stalled_error(stalls))
        finish(id, 'f')
      else
        requeue(id, NOWS)
      end
    end
  end
  return #ids
end

-- Due delayed jobs become waiting, in (run_at, enqueue order).
local function promote()
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOWS, 'WITHSCORES', 'LIMIT', 0, BATCH)
  local order = {}
  for i = 1, #due, 2 do
    order[#order + 1] = {due[i], tonumber(due[i + 1]), tonumber(field(due[i], 'q')) or 0}
  end
  table.sort(order, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for _, entry in ipairs(order) do
    local id = entry[1]
    redis.call('ZREM', K_DELAYED, id)
    local name = field(id, 'n')
    if name and field(id, 's') == 'd' then
      redis.call('HSET', job_key(id), 's', 'w')
      make_ready(id, name, priority_of(id))
      signal(name)
    end
  end
end

local function retain(state, cutoff, count)
  local k = finished_key(state)
  for _ = 1, BATCH do
    local oldest = redis.call('ZRANGE', k, 0, 0)[1]
    if not oldest then return end
    local too_many = count >= 0 and redis.call('ZCARD', k) > count
    local too_old = cutoff and (tonumber(field(oldest, 'e')) or 0) <= cutoff
    if not (too_many or too_old) then return end
    drop_job(oldest)
  end
end

-- What every claim, listing and idle poll does first.
local function maintain()
  promote()
  recover()
  retain('c', tonumber(ARGV[4]), tonumber(ARGV[5]))
  retain('f', tonumber(ARGV[6]), tonumber(ARGV[7]))
end

-- Claim the next job among the names listed from ARGV[base] (count, then name/cap pairs;
-- cap -1 = no cap): highest priority, then enqueue order. Entries whose hash is missing or
-- not ours are dropped; a record that is ours but malformed is still claimed, so the
-- Python side can fail it with a clear CorruptJobError.
local function claim(token, deadline, base)
  maintain()
  local count = tonumber(ARGV[base])
  for _ = 1, 100 do
    local best, best_name
    for i = 0, count - 1 do
      local name = ARGV[base + 1 + 2 * i]
      local cap = tonumber(ARGV[base + 2 + 2 * i])
      if cap < 0 or (tonumber(redis.call('HGET', K_ACTIVE_COUNT, name)) or 0) < cap then
        local head = head_of(name)
        if head and (best == nil or head[1] > best[1] or (head[1] == best[1] and head[3] < best[3])) then
          best, best_name = head, name
        end
      end
    end
    if not best then return nil end
    local id, list = best[2], ready_key(best_name, best[1])
    redis.call('LPOP', list)
    if redis.call('LLEN', list) == 0 then redis.call('ZREM', levels_key(best_name), best[1]) end
    local state = is_job(id) and (field(id, 's') or '?') or nil
    if state and not (state == 'd' or state == 'a' or state == 'c' or state == 'f') then
      local j = job_key(id)
      if field(id, 'n') ~= best_name then redis.call('HSET', j, 'n', best_name) end
      redis.call('HSET', j, 's', 'a', 'k', token, 'b', NOWS, 'q', redis.call('INCR', K_SEQ))
      incr_field(id, 'm', 1)
      redis.call('ZADD', K_ACTIVE, deadline, id)
      redis.call('HINCRBY', K_ACTIVE_COUNT, best_name, 1)
      return snapshot(id)
    end
  end
  return nil
end
