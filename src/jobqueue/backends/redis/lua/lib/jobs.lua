-- Reading and writing one job's hash, tolerating foreign data.
--
-- Foreign or corrupt data under the namespace must never raise: reads of a job's hash go
-- through redis.pcall (an error reply comes back as a table with `err`), and `foreign` tells
-- foreign data from any other refusal, which fails the call.


-- Whether `v`, a redis.pcall reply, is the error of foreign data: a key holding another type
-- (WRONGTYPE) or a counted value that is no integer. Any other error is raised, failing the
-- whole call: a Redis Cluster refusing a key ("non local key") must not pass for a missing
-- job, which a claim would drop; the client reports the refusal as retryable.
local function foreign(v)
  if type(v) ~= 'table' or not v.err then return false end
  local e = tostring(v.err) -- a string, or on fakeredis (lupa) a Python bytes object
  if string.find(e, 'WRONGTYPE', 1, true) or string.find(e, 'not an integer', 1, true)
    or string.find(e, 'overflow', 1, true) then
    return true
  end
  error(v)
end

-- The job's hash field, or nil when the key is missing or not a hash (foreign data).
local function field(id, name)
  local v = redis.pcall('HGET', job_key(id), name)
  if v == false or foreign(v) then return nil end
  return v
end

-- Several fields at once (false where missing), or nil when the key is not a hash.
local function fields(id, ...)
  local v = redis.pcall('HMGET', job_key(id), ...)
  if foreign(v) then return nil end
  return v
end

local function is_job(id)
  local v = redis.pcall('HLEN', job_key(id))
  return not foreign(v) and v > 0
end

-- HINCRBY that survives a corrupt (non-integer) field by starting it over.
local function incr_field(id, name, by)
  local v = redis.pcall('HINCRBY', job_key(id), name, by)
  if foreign(v) then
    redis.call('HSET', job_key(id), name, by)
    return by
  end
  return v
end

-- A stored counter plus one, as HINCRBY would count it (anything but an integer restarts).
local function plus_one(text)
  if text and #text < 16 and string.find(text, '^%-?%d+$') then return tonumber(text) + 1 end
  return 1
end

-- A job as the scripts return it: {id, fields, logs}, plus for an active job its lease
-- deadline (the active set's score, or `deadline` when the caller has just set it, so a
-- claim reads nothing more).
local function snapshot(id, deadline)
  local hash = redis.pcall('HGETALL', job_key(id))
  if foreign(hash) then return {id, 'corrupt'} end
  local logs, active = nil, false
  for i = 1, #hash, 2 do
    if hash[i] == 'L' then
      logs = redis.call('LRANGE', log_key(id), 0, -1)
    elseif hash[i] == 's' then
      active = hash[i + 1] == 'a'
    end
  end
  if active then
    return {id, hash, logs or {}, deadline or redis.call('ZSCORE', K_ACTIVE, id) or nil}
  end
  return {id, hash, logs or {}}
end

-- The state letters of the live states, which hold a job's unique key: JobState.is_live,
-- written into the lib by scripts.read_lib from jobqueue.job.LIVE_STATES (not restated here).
local LIVE_LETTERS = '@LIVE_STATES@'

-- Whether a job in `state` (a state letter; nil or false: no job) holds its unique key.
local function is_live(state)
  return type(state) == 'string' and #state == 1 and string.find(LIVE_LETTERS, state, 1, true) ~= nil
end
