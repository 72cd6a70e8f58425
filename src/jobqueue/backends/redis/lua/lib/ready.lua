-- The waiting lists: one per name and priority level, and per name a zset of its levels;
-- the next job to claim across the wanted names, caps and pauses.

-- The paused names, read once per call (claims look at every wanted name, often many times).
local function is_paused(name)
  if not paused_names then
    paused_names = {}
    for _, n in ipairs(redis.call('SMEMBERS', K_PAUSED)) do paused_names[n] = true end
  end
  return paused_names[name] == true
end

-- Pop the next waiting id of one name, or nil. A level the pop leaves empty stays listed
-- until the next look at it (here or in head_of) drops it; an empty level counts and lists
-- as nothing, and make_ready re-adding it is harmless.
local function pop_head(name)
  local levels = levels_key(name)
  for _ = 1, 100 do
    local top = redis.pcall('ZREVRANGE', levels, 0, 0)
    if foreign(top) or not top[1] then return nil end
    local list = ready_key(name, top[1])
    local id = redis.pcall('LPOP', list)
    if id == false or foreign(id) then
      redis.call('ZREM', levels, top[1]) -- empty, or not a list (foreign data)
    else
      return id
    end
  end
  return nil
end

-- How many ids the waiting lists of `name` hold.
local function waiting_count(name)
  local total = 0
  local levels = redis.pcall('ZRANGE', levels_key(name), 0, -1)
  if foreign(levels) then return 0 end
  for _, level in ipairs(levels) do
    local n = redis.pcall('LLEN', ready_key(name, level))
    if not foreign(n) then total = total + n end
  end
  return total
end

-- The waiting count of `name` set to what its lists hold (settle writes the difference):
-- after an entry that was no whole job of ours left them, as nobody can tell whether it was
-- ever counted. Only on that rare path: O(priority levels of the name).
local function recount_waiting(name)
  local v = redis.pcall('HGET', name_counts_key(name), 'w')
  local stored = (v ~= false and not foreign(v)) and tonumber(v) or 0
  local pending = count_changes[name] and count_changes[name]['w'] or 0
  tally(name, 'w', waiting_count(name) - stored - pending)
end

-- Append to the waiting list of its priority; the first job of a level registers it.
local function make_ready(id, name, priority)
  if redis.call('RPUSH', ready_key(name, priority), id) == 1 then
    redis.call('ZADD', levels_key(name), priority, priority)
  end
end

-- Take a waiting job out of its list (O(list length): only removal needs it, never a claim).
local function unready(id, name, priority)
  local level = tonumber(priority) or 0
  local k = ready_key(name, level)
  redis.call('LREM', k, 0, id)
  if redis.call('LLEN', k) == 0 then redis.call('ZREM', levels_key(name), level) end
end

-- The next job of one name without taking it: {priority, id} or nil. Drops empty levels.
local function head_of(name)
  for _ = 1, 100 do
    local top = redis.pcall('ZREVRANGE', levels_key(name), 0, 0)
    if foreign(top) or not top[1] then return nil end
    local id = redis.pcall('LINDEX', ready_key(name, top[1]), 0)
    if id ~= false and not foreign(id) then return {tonumber(top[1]), id} end
    redis.call('ZREM', levels_key(name), top[1])
  end
  return nil
end

-- Take the next waiting id among the names listed from ARGV[base] (count, then name/cap
-- pairs; cap -1 = no cap), paused names left out: highest priority, then enqueue order.
-- Returns name, id or nil.
local function take_next(base)
  local count = tonumber(ARGV[base])
  local best, best_name, best_seq
  for i = 0, count - 1 do
    local name = ARGV[base + 1 + 2 * i]
    local cap = tonumber(ARGV[base + 2 + 2 * i])
    local open = cap < 0
    if is_paused(name) then
      open = false
    elseif not open then
      local active = (tonumber(redis.call('HGET', K_ACTIVE_COUNT, name)) or 0)
        + (active_changes[name] or 0)
      open = active < cap
    end
    if open then
      if count == 1 then return name, pop_head(name) end
      local head = head_of(name)
      if head and best and head[1] == best[1] then
        -- Same priority: the earlier enqueued wins (sequences read only for a tie).
        best_seq = best_seq or tonumber(field(best[2], 'q')) or 0
        local seq = tonumber(field(head[2], 'q')) or 0
        if seq < best_seq then best, best_name, best_seq = head, name, seq end
      elseif head and (best == nil or head[1] > best[1]) then
        best, best_name, best_seq = head, name, nil
      end
    end
  end
  if not best then return nil end
  redis.call('LPOP', ready_key(best_name, best[1])) -- an emptied level goes lazily (pop_head)
  return best_name, best[2]
end
