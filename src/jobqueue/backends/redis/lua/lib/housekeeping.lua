-- Housekeeping: due delayed jobs promoted, finished jobs past retention dropped -- at most
-- BATCH each per call. (Stall recovery is the core's: expired.lua, then apply.lua.)

-- Due delayed jobs become waiting, in (run_at, enqueue order).
local function promote()
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOWS, 'WITHSCORES', 'LIMIT', 0, BATCH)
  if #due == 0 then return 0 end
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
    local f = fields(id, 'n', 's', 'p') or {}
    local name = f[1]
    if name and f[2] == 'd' then
      local seq = next_seq()
      redis.call('HSET', job_key(id), 's', 'w', 'q', seq)
      move_count(name, 'd', 'w')
      make_ready(id, name, tonumber(f[3]) or 0, seq)
      signal(name)
    end
  end
  return #due / 2
end

-- Drop the oldest-finished jobs while there are more than `count` (-1: no limit) or the
-- oldest finished at or before `cutoff` (nil: no limit), at most BATCH per call. Returns
-- how many it dropped.
local function retain(state, cutoff, count)
  if count < 0 and not cutoff then return 0 end
  local k = finished_key(state)
  local size = redis.call('ZCARD', k)
  local excess = count < 0 and 0 or size - count
  if size == 0 or (excess <= 0 and not cutoff) then return 0 end
  local dropped = 0
  while dropped < BATCH do
    -- The ones over the count, plus the next (whose age decides whether to go on).
    local ids = redis.call('ZRANGE', k, 0, math.min(math.max(excess - dropped, 0), BATCH))
    if #ids == 0 then return dropped end
    for _, id in ipairs(ids) do
      local f = fields(id, 's', 'e', 'u', 'w', 'n')
      if dropped >= excess and (not cutoff or (f and tonumber(f[2]) or 0) > cutoff) then
        return dropped
      end
      if f and f[1] == state then -- the usual case: only the finished set holds it
        redis.call('ZREM', k, id)
        forget_unique(id, f[3])
        notify_waiters(id, f[4])
        tally(f[5], state, -1)
        redis.call('DEL', job_key(id), log_key(id), outcomes_key(id))
      else
        drop_job(id)
      end
      dropped = dropped + 1
    end
  end
  return dropped
end

-- Finished jobs past the retention policy dropped (at most BATCH per set).
local function retention()
  return retain('c', cutoff(ARGV[4]), tonumber(ARGV[5]))
    + retain('f', cutoff(ARGV[6]), tonumber(ARGV[7]))
    + retain('x', cutoff(ARGV[TAIL + 2]), tonumber(ARGV[TAIL + 3]))
end

-- Time moved forward, without stall recovery (housekeep.lua: the core recovers stalls
-- through expired.lua and apply.lua). Returns how many jobs it moved or removed.
local function tidy()
  return promote() + retention()
end
