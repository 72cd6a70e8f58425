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

-- Where the JSON string opening at `pos` of `text` closes (its last quote), or nil.
local function string_end(text, pos)
  repeat
    pos = string.find(text, '["\\]', pos + 1)
    if not pos then return nil end
    local escaped = string.sub(text, pos, pos) == '\\'
    if escaped then pos = pos + 1 end
  until not escaped
  return pos
end

-- The top-level members of a JSON object's text ('"key":value' each), found by skipping
-- strings and counting brackets: Lua's cjson would re-print numbers with 14 digits, so the
-- stored text is cut, never re-encoded.
local function json_members(text)
  local members, start, depth, pos = {}, 2, 0, 2
  if string.sub(text, 1, 1) ~= '{' then return members end
  while pos < #text do
    local c = string.sub(text, pos, pos)
    if c == '"' then
      pos = string_end(text, pos)
      if not pos then return members end
    elseif c == '{' or c == '[' then
      depth = depth + 1
    elseif c == '}' or c == ']' then
      depth = depth - 1
    elseif c == ',' and depth == 0 then
      members[#members + 1] = string.sub(text, start, pos - 1)
      start = pos + 1
    end
    pos = pos + 1
  end
  if #text > 2 then members[#members + 1] = string.sub(text, start, #text - 1) end
  return members
end

-- A flow job's outcomes (field Y '1' marks them): the hash outcomes_key(id), one field per
-- dependency id, its outcome's JSON text as Python wrote it -- a delivery is one HSET
-- whatever the number of outcomes, and no number is re-printed (cjson would keep 14 digits).
-- As the JSON object field Y reads (snapshot).
local function outcomes_json(id)
  local flat = redis.pcall('HGETALL', outcomes_key(id))
  if foreign(flat) then return '{}' end
  local members = {}
  for i = 1, #flat, 2 do members[#members + 1] = cjson.encode(flat[i]) .. ':' .. flat[i + 1] end
  return '{' .. table.concat(members, ',') .. '}'
end

-- The ids that have an outcome, as a set.
local function outcome_ids(id)
  local ids = {}
  local keys = redis.pcall('HKEYS', outcomes_key(id))
  if foreign(keys) then return ids end
  for _, key in ipairs(keys) do ids[key] = true end
  return ids
end

-- One dependency's outcome put in; true when it had none before.
local function put_outcome(id, from, outcome)
  local k = outcomes_key(id)
  local added = redis.pcall('HSET', k, from, outcome)
  if foreign(added) then -- not a hash (foreign data): replaced
    redis.call('DEL', k)
    added = redis.call('HSET', k, from, outcome)
  end
  return added == 1
end

-- The outcomes set whole from `text`, a JSON object (a submit's or a change's field Y; ''
-- or '{}' = none). Returns field Y's value: '1', or false when there are none.
local function set_outcomes(id, text)
  redis.call('DEL', outcomes_key(id))
  local any = false
  for _, member in ipairs(json_members(text or '')) do
    local close = string_end(member, 1)
    local ok, from = pcall(cjson.decode, string.sub(member, 1, close or 0))
    if close and ok and type(from) == 'string' then
      put_outcome(id, from, string.sub(member, close + 2))
      any = true
    end
  end
  return any and '1'
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
    elseif hash[i] == 'Y' then
      hash[i + 1] = outcomes_json(id)
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
