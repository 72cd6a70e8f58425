#!lua
-- Claim one tick of a periodic schedule and store its job, in one step (see
-- Transitions.claim_tick). No allow-oom flag, as submit: a full server refuses it whole.
-- ARGV[9] schedule name, [10] the call's id, [11] tick (exact text), [12] definition JSON,
-- [13] ticks missed, [14] the state letters of a previous job that skip this tick
-- (lifecycle.blocking_states of the schedule's overlap, decided by the core), [15] recent
-- ticks kept,
-- [16] '1' when a job is to be stored, its arguments from [17] as store_job reads them.
-- Returns {'s', id, state letter} (submitted) or {letter}: 'r' recorded, 'c' already
-- claimed, 'o' overlap skipped, 'p' paused.
-- Hash P S:NAME: d definition, t last tick (the high-water mark), j last job id, p '1' when
-- paused, m missed, k skipped, u updated_at, c the id of the call that last moved t and C its
-- reply (its letter, then a submitted job's state letter). List P T:NAME: recent ticks,
-- newest first, "tick letter job-id". Set P schedules: the names.
-- A call sent again (its reply lost; the backend or redis-py resends it) finds its own id in
-- c with t at its tick, and gets the first run's reply: never a second job, and the caller
-- still learns the job it stored. Any other claim of a tick at or before t changes nothing.
local name, call, tick = ARGV[9], ARGV[10], ARGV[11]
local K = schedule_key(name)
local f = redis.call('HMGET', K, 't', 'j', 'p', 'c', 'C')
local last = f[1] and tonumber(f[1])
if last and tonumber(tick) <= last then
  if call ~= '' and f[4] == call and tonumber(tick) == last and f[5] then
    local letter = string.sub(f[5], 1, 1)
    if letter == 's' then return {'s', f[2] or '', string.sub(f[5], 2)} end
    return {letter}
  end
  return {'c'}
end
local last_job = f[2] or nil
local letter, entry_job, state
if ARGV[16] ~= '1' then
  letter = 'r'
elseif f[3] == '1' then
  letter = 'p'
else
  -- A job that is gone (removed, purged, retained away) has no state: it never blocks.
  local s = last_job and field(last_job, 's')
  if s and #s == 1 and string.find(ARGV[14], s, 1, true) then
    letter, entry_job = 'o', last_job
  else
    local stored = {}
    local _, kind, id, stored_state = store_job(17, stored)
    wake_stored(stored)
    state = stored_state
    entry_job = id
    if kind == 'u' then
      letter, state = 'o', nil -- a live job holds its unique key: nothing stored
    else
      letter, last_job = 's', id
    end
  end
end
local hash = {'d', ARGV[12], 't', tick, 'u', NOWS, 'c', call, 'C', letter .. (state or '')}
if last_job then
  hash[#hash + 1] = 'j'
  hash[#hash + 1] = last_job
end
redis.call('HSET', K, unpack(hash))
if tonumber(ARGV[13]) > 0 then redis.call('HINCRBY', K, 'm', ARGV[13]) end
if letter == 'o' or letter == 'p' then redis.call('HINCRBY', K, 'k', 1) end
redis.call('SADD', K_SCHEDULES, name)
local ticks = schedule_ticks_key(name)
redis.call('LPUSH', ticks, tick .. ' ' .. letter .. ' ' .. (entry_job or ''))
redis.call('LTRIM', ticks, 0, tonumber(ARGV[15]) - 1)
if letter == 's' then return {'s', last_job, state} end
return {letter}
