#!lua flags=allow-oom
-- Cancel the jobs of one state, at most one batch per call (see Backend.cancel_many).
-- ARGV[9] state letter: 'w' waiting and 'd' delayed jobs end CANCELLED at once (unique keys
-- freed, waiters woken) in the order they would have run -- waiting ones by name, then
-- priority and enqueue order; delayed ones by due time, then enqueue order -- and 'a' active
-- jobs get their cancel requested (field C) for their holders' next heartbeat. [10] name
-- ('' = any, else '=' .. name), [11] offset (entries earlier calls left in place, ahead of
-- the rest). Returns {changed, kept, scanned}; fewer than BATCH scanned means it is done.
-- A repeat goes on with what is left (the first run's count is the only thing lost).
local state = ARGV[9]
local name = ARGV[10] ~= '' and string.sub(ARGV[10], 2) or nil
local offset = tonumber(ARGV[11])
local changed, scanned = 0, 0

-- A waiting or delayed job, taken out of its line already, ends CANCELLED.
local function cancel_now(id)
  finish(id, 'x', fields(id, 'k', 'n', 'u', 'w'))
  changed = changed + 1
end

if state == 'w' then
  -- The heads of the waiting lists, name by name in byte order (SMEMBERS has none), each
  -- name's levels from the highest priority. Lists hold waiting jobs only, so nothing is
  -- kept: an entry that is not a waiting job (foreign data) is dropped, as a claim would.
  local names = name and {name} or redis.call('SMEMBERS', K_NAMES)
  table.sort(names)
  for _, n in ipairs(names) do
    local levels = redis.pcall('ZREVRANGE', levels_key(n), 0, -1)
    if not foreign(levels) then
      for _, level in ipairs(levels) do
        if scanned >= BATCH then break end
        local list = ready_key(n, level)
        local ids = redis.pcall('LRANGE', list, 0, BATCH - scanned - 1)
        if not foreign(ids) then
          redis.call('LTRIM', list, #ids, -1)
          if redis.call('LLEN', list) == 0 then redis.call('ZREM', levels_key(n), level) end
          for _, id in ipairs(ids) do
            if field(id, 's') == 'w' then cancel_now(id) end
          end
          scanned = scanned + #ids
        end
      end
    end
    if scanned >= BATCH then break end
  end
  return {changed, 0, scanned}
elseif state == 'd' then
  -- A window of the delayed set from the offset, widened past entries tied with its last
  -- due time, then sorted by (due time, enqueue order) as a claim would promote them.
  local total = redis.call('ZCARD', K_DELAYED)
  local window = redis.call('ZRANGE', K_DELAYED, offset, offset + BATCH - 1, 'WITHSCORES')
  local rows = {}
  for i = 1, #window, 2 do rows[#rows + 1] = {window[i], tonumber(window[i + 1])} end
  local pos = offset + #rows
  while pos < total and #rows > 0 do
    local more = redis.call('ZRANGE', K_DELAYED, pos, pos, 'WITHSCORES')
    if tonumber(more[2]) ~= rows[#rows][2] then break end
    rows[#rows + 1] = {more[1], tonumber(more[2])}
    pos = pos + 1
  end
  for _, row in ipairs(rows) do row[3] = tonumber(field(row[1], 'q')) or 0 end
  table.sort(rows, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for _, row in ipairs(rows) do
    local id = row[1]
    local f = fields(id, 's', 'n')
    if f and f[1] == 'd' and (not name or f[2] == name) then
      redis.call('ZREM', K_DELAYED, id)
      cancel_now(id)
    end
  end
  return {changed, #rows - changed, #rows}
end
-- Active jobs stay in the active set: every entry scanned is kept.
local ids = redis.call('ZRANGE', K_ACTIVE, offset, offset + BATCH - 1)
for _, id in ipairs(ids) do
  local f = fields(id, 's', 'n', 'C')
  if f and f[1] == 'a' and (not name or f[2] == name) and f[3] ~= '1' then
    redis.call('HSET', job_key(id), 'C', '1')
    changed = changed + 1
  end
end
return {changed, #ids, #ids}
