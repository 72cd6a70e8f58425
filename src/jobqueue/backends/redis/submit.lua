#!lua
-- Store new jobs (one or many in one call). No allow-oom flag: at maxmemory Redis refuses
-- this script before it runs, so a full server stores nothing rather than part of a batch.
-- ARGV[9] = the call's idempotency key ('' = none), ARGV[10] = how many; then per job:
--   name, priority, unique ('' = none, else '=' .. key), run_at (a time argument), #logs,
--   #field pairs, log entries..., field/value pairs... (every non-default field, encoded)
-- Returns per job {'n', id, state letter} (stored) or {'u', id, fields, logs} (the live job
-- holding its unique key, stored nothing).
-- The idempotency key remembers what a call stored for a short while, so the same call sent
-- again (its reply was lost; redis-py or the backend resends it) returns the same ids
-- instead of storing the jobs twice. The record is one character a job: the ids a call
-- stores are consecutive, so "first id:" then 'w' or 'd' per stored job, 'u' .. id .. ','
-- per job deduplicated onto a live one.
local K_CALL = ARGV[9] ~= '' and P .. 'i:' .. ARGV[9]
local CALL_TTL = 120 -- seconds: far longer than a resend takes (one socket timeout)
if K_CALL then
  local done = redis.call('GET', K_CALL)
  if done then
    local out = {}
    local colon = string.find(done, ':', 1, true)
    local next_id, pos = tonumber(string.sub(done, 1, colon - 1)), colon + 1
    while pos <= #done do
      local kind = string.sub(done, pos, pos)
      if kind == 'u' then
        local comma = string.find(done, ',', pos, true)
        local snap = snapshot(string.sub(done, pos + 1, comma - 1))
        out[#out + 1] = {'u', snap[1], snap[2], snap[3], snap[4]}
        pos = comma + 1
      else
        out[#out + 1] = {'n', tostring(next_id), kind}
        next_id = next_id + 1
        pos = pos + 1
      end
    end
    return out
  end
end
local out = {}
local record, first_id = {}, nil
local stored = {} -- name -> how many jobs were stored for it (one wake-up each, bounded)
local i = 11
for n = 1, tonumber(ARGV[10]) do
  local name, priority, unique, run_at = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], at(ARGV[i + 3])
  local nlogs, npairs = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local logs_at, pairs_at = i + 6, i + 6 + nlogs
  local relative = string.sub(ARGV[i + 3], 1, 1) == '+'
  i = pairs_at + 2 * npairs
  local existing
  if unique ~= '' then
    unique = string.sub(unique, 2)
    existing = redis.call('HGET', K_UNIQUE, unique)
    local state = existing and field(existing, 's')
    if not (state == 'w' or state == 'd' or state == 'a') then existing = nil end
  end
  if existing then
    local snap = snapshot(existing)
    out[n] = {'u', snap[1], snap[2], snap[3], snap[4]}
    record[n] = 'u' .. existing .. ','
  else
    local id = tostring(redis.call('INCR', P .. 'id'))
    -- The namespace's first job ever: every job it will hold is counted by name.
    if id == '1' then redis.call('SET', K_COUNTED, '1') end
    first_id = first_id or id
    local delayed = tonumber(run_at) > NOW
    local state = delayed and 'd' or 'w'
    local hash = {'n', name, 's', state, 'q', redis.call('INCR', K_SEQ)}
    for k = pairs_at, pairs_at + 2 * npairs - 1 do hash[#hash + 1] = ARGV[k] end
    if relative and delayed then
      -- The due time on the server's clock replaces the client's (a later field wins).
      hash[#hash + 1] = 'r'
      hash[#hash + 1] = run_at
    end
    if nlogs > 0 then
      hash[#hash + 1] = 'L'
      hash[#hash + 1] = '1'
    end
    redis.call('HSET', job_key(id), unpack(hash))
    tally(name, state, 1)
    if nlogs > 0 then redis.call('RPUSH', log_key(id), unpack(ARGV, logs_at, logs_at + nlogs - 1)) end
    if unique ~= '' then redis.call('HSET', K_UNIQUE, unique, id) end
    if delayed then
      redis.call('ZADD', K_DELAYED, run_at, id)
    else
      make_ready(id, name, priority)
    end
    if not stored[name] then
      redis.call('SADD', K_NAMES, name)
      stored[name] = 0
    end
    stored[name] = stored[name] + 1
    out[n] = {'n', id, state}
    record[n] = state
  end
end
for name, count in pairs(stored) do signal(name, count) end
if K_CALL then
  redis.call('SET', K_CALL, (first_id or '0') .. ':' .. table.concat(record), 'EX', CALL_TTL)
end
return out
