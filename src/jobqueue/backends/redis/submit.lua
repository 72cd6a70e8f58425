#!lua
-- Store new jobs (one or many in one call). No allow-oom flag: at maxmemory Redis refuses
-- this script before it runs, so a full server stores nothing rather than part of a batch.
-- ARGV[9] = the call's idempotency key ('' = none), ARGV[10] = how many; then per job the
-- arguments store_job (in _lib.lua) reads: name, priority, unique, run_at, #logs, #field
-- pairs, log entries..., field/value pairs...
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
  local kind, id, state
  i, kind, id, state = store_job(i, stored)
  if kind == 'u' then
    local snap = snapshot(id)
    out[n] = {'u', snap[1], snap[2], snap[3], snap[4]}
    record[n] = 'u' .. id .. ','
  else
    first_id = first_id or id
    out[n] = {'n', id, state}
    record[n] = state
  end
end
wake_stored(stored)
if K_CALL then
  redis.call('SET', K_CALL, (first_id or '0') .. ':' .. table.concat(record), 'EX', CALL_TTL)
end
return out
