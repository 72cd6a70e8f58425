#!lua
-- Store new jobs (one or many in one call). No allow-oom flag: at maxmemory Redis refuses
-- this script before it runs, so a full server stores nothing rather than part of a batch.
-- ARGV[9] = the call's lane ('' = none), ARGV[10] = the call's number in its lane,
-- ARGV[11] = how many jobs, ARGV[12] = '1' for a flow (submit_flow: its jobs name each other
-- as "@k", translated by store_job; sent whole in one call); then per job the arguments
-- store_job (lua/lib/store.lua) reads:
-- name, priority, unique, run_at, #logs, #field pairs, log entries..., field/value pairs...
-- Returns per job {'n', id, state letter} (stored) or {'u', id, fields, logs} (the live job
-- holding its unique key, stored nothing).
-- Idempotency per lane: a lane is a sequence of calls of which at most one is in flight at
-- a time (the backend takes one from a pool for each call), numbered 1, 2, ... Key
-- P i:LANE remembers the lane's last call for a short while, as "number|record", so the
-- same call sent again (its reply was lost; redis-py or the backend resends it) returns the
-- same ids instead of storing the jobs twice, and a copy older than the lane's last call
-- (it can only be a stray duplicate) stores nothing. One key per live lane, not per call.
-- The record is one character a job: the ids a call stores are consecutive, so "first id:"
-- then 'w', 'd' or 'b' per stored job, 'u' .. id .. ',' per job deduplicated onto a live one.
local K_LANE = ARGV[9] ~= '' and P .. 'i:' .. ARGV[9]
local CALL = ARGV[10]
local LANE_TTL = 120 -- seconds: far longer than a resend takes (one socket timeout)
if K_LANE then
  local last = redis.call('GET', K_LANE)
  local bar = last and string.find(last, '|', 1, true)
  if bar then
    local seq = string.sub(last, 1, bar - 1)
    if seq == CALL then
      local out = {}
      local colon = string.find(last, ':', bar + 1, true)
      local first, pos = tonumber(string.sub(last, bar + 1, colon - 1)), colon + 1
      while pos <= #last do
        local kind = string.sub(last, pos, pos)
        if kind == 'u' then
          local comma = string.find(last, ',', pos, true)
          local snap = snapshot(string.sub(last, pos + 1, comma - 1))
          out[#out + 1] = {'u', snap[1], snap[2], snap[3], snap[4]}
          pos = comma + 1
        else
          out[#out + 1] = {'n', string.format('%d', first), kind}
          first = first + 1
          pos = pos + 1
        end
      end
      return out
    end
    local before = tonumber(seq)
    if before and tonumber(CALL) < before then
      return redis.error_reply('ERR submit call ' .. CALL .. ' of lane ' .. ARGV[9]
        .. ' arrived after call ' .. seq .. ' of that lane: a stray copy, nothing stored')
    end
  end
end
local out = {}
local record, first_id = {}, nil
local stored = {} -- name -> how many jobs were stored for it (one wake-up each, bounded)
local i = 13
reserve_numbers(tonumber(ARGV[11]))
local flow = ARGV[12] == '1' and flow_ids(i, tonumber(ARGV[11])) or nil
for n = 1, tonumber(ARGV[11]) do
  local kind, id, state
  i, kind, id, state = store_job(i, stored, flow, n)
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
if K_LANE then
  redis.call('SET', K_LANE, CALL .. '|' .. (first_id or '0') .. ':' .. table.concat(record),
    'EX', LANE_TTL)
end
return out
