-- The waiting lists: one per name and priority level, and per name a zset of its levels;
-- the heads across names (heads_key), kept with every change at a list's front, and the
-- next job to claim across the names a claim serves, caps and pauses: found from the heads,
-- so a claim takes as many steps for one name as for thousands.

-- The paused names, read once per call.
local function is_paused(name)
  if not paused_names then
    paused_names = {}
    for _, n in ipairs(redis.call('SMEMBERS', K_PAUSED)) do paused_names[n] = true end
  end
  return paused_names[name] == true
end

-- List `name` among the heads of `level`, its first job's sequence number `seq` the score
-- (a paused name is not listed: resume lists it).
local function set_head(name, level, seq)
  if is_paused(name) then return end
  if redis.call('ZADD', heads_key(level), seq, name) == 1 then
    redis.call('ZADD', K_LEVELS, level, level)
    levels_listed = nil
  end
end

-- Take `name` off the heads of `level` (its list emptied, or the name paused).
local function unlist_head(name, level)
  local k = heads_key(level)
  if redis.call('ZREM', k, name) == 1 and redis.call('ZCARD', k) == 0 then
    redis.call('ZREM', K_LEVELS, level)
  end
end

-- The front of `name`'s list at `level` changed: its head re-read, or the level dropped
-- from the name's levels and the heads when the list is empty (or not a list: foreign data).
local function refresh_head(name, level)
  local id = redis.pcall('LINDEX', ready_key(name, level), 0)
  if id and not foreign(id) then
    if not is_paused(name) then set_head(name, level, tonumber(field(id, 'q')) or 0) end
    return
  end
  redis.call('ZREM', levels_key(name), level)
  unlist_head(name, level)
end

-- Every level of `name` listed among the heads again (resume), or taken off them (pause).
local function list_heads(name, listed)
  local levels = redis.pcall('ZRANGE', levels_key(name), 0, -1)
  if foreign(levels) then return end
  for _, level in ipairs(levels) do
    if listed then refresh_head(name, level) else unlist_head(name, level) end
  end
end

-- Pop the next waiting id of one name (its highest level), or nil.
local function pop_head(name)
  local levels = levels_key(name)
  for _ = 1, 100 do
    local top = redis.pcall('ZREVRANGE', levels, 0, 0)
    if foreign(top) or not top[1] then return nil end
    local id = redis.pcall('LPOP', ready_key(name, top[1]))
    refresh_head(name, top[1])
    if id ~= false and not foreign(id) then return id end
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

-- Append to the waiting list of its priority (`seq` the job's sequence number, just set);
-- the first job of a level registers the level and the name's head there.
local function make_ready(id, name, priority, seq)
  if redis.call('RPUSH', ready_key(name, priority), id) == 1 then
    redis.call('ZADD', levels_key(name), priority, priority)
    set_head(name, priority, seq)
  end
end

-- Take a waiting job out of its list (O(list length): only removal needs it, never a claim).
local function unready(id, name, priority)
  local level = tonumber(priority) or 0
  redis.call('LREM', ready_key(name, level), 0, id)
  refresh_head(name, level)
end

-- What a claim serves, from ARGV[base]: the digest of its name group (group.lua), then the
-- count of capped names and name/cap pairs. Read once per call.
local function claim_spec(base)
  if not spec then
    local caps = {}
    for i = 0, tonumber(ARGV[base + 1]) - 1 do
      caps[ARGV[base + 2 + 2 * i]] = tonumber(ARGV[base + 3 + 2 * i])
    end
    spec = {group = ARGV[base], caps = caps, served = {}, missing = false, capped = false}
  end
  return spec
end

-- Whether the spec may take a job of `name` now: 'open', 'capped' (at its max_active) or
-- nil (not served). Paused names are not among the heads.
local function openness(s, name)
  local served = s.served[name]
  if served == nil and s.group == '' then return nil end
  if served == nil then
    served = redis.call('SISMEMBER', group_key(s.group), name) == 1
    s.served[name] = served
  end
  if not served then return nil end
  local cap = s.caps[name]
  if cap then
    local active = (tonumber(redis.call('HGET', K_ACTIVE_COUNT, name)) or 0)
      + (active_changes[name] or 0)
    if active >= cap then return 'capped' end
  end
  return 'open'
end

-- Pop up to `want` ids of `name` at `level` (more than one only when the name is alone at
-- its level and uncapped, so its jobs come first in any order anyway): the first is
-- returned, the rest kept in `run` for the call's next claims. nil when the list held none.
local function pop_level(name, level, want)
  local list = ready_key(name, level)
  local ids
  if want > 1 then
    ids = redis.pcall('LRANGE', list, 0, want - 1)
    if not foreign(ids) and ids[1] then redis.call('LTRIM', list, #ids, -1) end
  else
    ids = {redis.pcall('LPOP', list)}
  end
  refresh_head(name, level)
  if foreign(ids) or not ids[1] or foreign(ids[1]) then return nil end
  if #ids > 1 then run = {name = name, level = level, ids = ids, at = 2} end
  return ids[1]
end

-- One pass over the heads for the next claimable job: name, id; or nil and whether a job
-- was ready that only a cap kept from the spec; or 'again' when a list turned out empty
-- (the heads changed under the pass). With `peek`, nothing is taken: true as soon as any
-- served name has a job ready.
local function scan_heads(s, want, peek)
  local capped = false
  if not levels_listed then levels_listed = redis.call('ZREVRANGE', K_LEVELS, 0, -1) end
  for _, level in ipairs(levels_listed) do
    local k, from = heads_key(level), 0
    while true do
      local names = redis.call('ZRANGE', k, from, from + 15)
      for _, name in ipairs(names) do
        local open = openness(s, name)
        if peek and open then return true end
        if open == 'open' then
          local alone = #names == 1 and from == 0 and not s.caps[name]
          local id = pop_level(name, level, alone and want or 1)
          if not id then return 'again' end
          return name, id
        end
        capped = capped or open == 'capped'
      end
      if #names < 16 then break end
      from = from + 16
    end
  end
  return nil, capped
end

-- Take the next waiting id for the spec at ARGV[base] (see claim_spec), for a call that may
-- claim `want` jobs: highest priority, then enqueue order, across the names it serves,
-- capped ones at their cap and paused ones left out. Returns name, id; or nil, noting in
-- the spec whether a job was ready that only a cap kept from it (`capped`) and whether its
-- group is not stored (`missing`: dropped by housekeep, or lost; the caller stores it and
-- asks again).
local function take_next(base, want)
  if run then
    local id = run.ids[run.at]
    run.at = run.at + 1
    local name = run.name
    if run.at > #run.ids then run = nil end
    return name, id
  end
  local s = claim_spec(base)
  for _ = 1, 100 do
    local name, id = scan_heads(s, want or 1, false)
    if name ~= 'again' then
      if not name then
        s.capped = id
        s.missing = s.group ~= '' and redis.call('EXISTS', group_key(s.group)) == 0
        return nil
      end
      return name, id
    end
  end
  return nil
end

-- Whether a job of a name the spec at ARGV[base] serves is ready, claimable or capped
-- (sets the spec's `missing` as take_next does).
local function any_ready(base)
  local s = claim_spec(base)
  if scan_heads(s, 1, true) then return true end
  s.missing = s.group ~= '' and redis.call('EXISTS', group_key(s.group)) == 0
  return false
end

-- Ids a call popped ahead (take_next) and did not claim go back to the front of their list.
local function put_back_run()
  if not run then return end
  for i = #run.ids, run.at, -1 do redis.call('LPUSH', ready_key(run.name, run.level), run.ids[i]) end
  redis.call('ZADD', levels_key(run.name), run.level, run.level)
  refresh_head(run.name, run.level)
  run = nil
end
