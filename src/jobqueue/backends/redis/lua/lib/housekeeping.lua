-- Housekeeping every claim and idle poll does first: due delayed jobs promoted, expired
-- leases recovered, finished jobs past retention dropped -- at most BATCH each per call.

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
      redis.call('HSET', job_key(id), 's', 'w', 'q', next_seq())
      move_count(name, 'd', 'w')
      make_ready(id, name, tonumber(f[3]) or 0)
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
        redis.call('DEL', job_key(id), log_key(id))
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

-- What every claim and idle poll does first (reads never do): tidy, with the old verbs'
-- inline stall recovery (recover) -- the one place it is called from. Returns how many jobs
-- it moved or removed.
local function maintain()
  if maintained then return 0 end -- once a call: a batch of claims shares one look
  maintained = true
  return promote() + recover() + retention()
end
