#!lua flags=allow-oom
-- How many jobs of each worker name are in each state: a flat list of name, then its
-- state letter/count pairs (a name with no jobs is left out). A read: no housekeeping.
-- The counts the scripts keep make it O(names); a namespace that held jobs before they
-- existed (no K_COUNTED) is counted from its jobs instead, O(jobs), so it is still right.
local out = {}
local names = redis.call('SMEMBERS', K_NAMES)
if redis.call('EXISTS', K_COUNTED) == 1 then
  for _, name in ipairs(names) do
    local counts = redis.pcall('HGETALL', name_counts_key(name))
    if not foreign(counts) and #counts > 0 then
      out[#out + 1] = name
      out[#out + 1] = counts
    end
  end
  return out
end
local by_name = {}
local function add(name, state, n)
  if not name or n <= 0 then return end
  local counts = by_name[name]
  if not counts then
    counts = {}
    by_name[name] = counts
  end
  counts[state] = (counts[state] or 0) + n
end
for _, name in ipairs(names) do add(name, 'w', waiting_count(name)) end
-- The other states' sets hold ids only: each job's name comes from its hash.
for _, state in ipairs({'d', 'a', 'b', 'c', 'f', 'x'}) do
  local k = state == 'd' and K_DELAYED or state == 'a' and K_ACTIVE
    or state == 'b' and K_BLOCKED or finished_key(state)
  for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do add(field(id, 'n'), state, 1) end
end
for name, counts in pairs(by_name) do
  local flat = {}
  for state, n in pairs(counts) do
    flat[#flat + 1] = state
    flat[#flat + 1] = n
  end
  out[#out + 1] = name
  out[#out + 1] = flat
end
return out
