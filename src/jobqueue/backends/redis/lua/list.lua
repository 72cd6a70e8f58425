#!lua flags=allow-oom
-- Jobs in one state in the reference order; a read, so no housekeeping. ARGV[9] state
-- letter, [10] offset, [11] limit. Returns a list of {id, fields, logs}.
local state, offset, limit = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local want = offset + limit
if limit <= 0 then return {} end
local rows = {} -- {id, primary key, tie-break}

-- The first `want` entries of a sorted set in its order, plus any further entries tied with
-- the last on the primary key, so the final sort on (primary, tie-break) is exact.
local function window(k, rev, key_of, tie_of)
  local total = redis.call('ZCARD', k)
  local stop = math.min(want, total)
  local cmd = rev and 'ZREVRANGE' or 'ZRANGE'
  local ids = stop > 0 and redis.call(cmd, k, 0, stop - 1, 'WITHSCORES') or {}
  for i = 1, #ids, 2 do rows[#rows + 1] = {ids[i], key_of(ids[i], ids[i + 1]), tie_of(ids[i])} end
  local pos = stop
  while pos < total and #rows > 0 do
    local more = redis.call(cmd, k, pos, pos, 'WITHSCORES')
    local primary = key_of(more[1], more[2])
    if primary ~= rows[#rows][2] then break end
    rows[#rows + 1] = {more[1], primary, tie_of(more[1])}
    pos = pos + 1
  end
end

local function score(_, s) return tonumber(s) end
local function numeric_id(id) return tonumber(id) or 0 end
local desc = false
if state == 'w' then
  -- Per name, the first `want` jobs by (priority desc, enqueue order); the merge sorts.
  for _, name in ipairs(redis.call('SMEMBERS', K_NAMES)) do
    local levels = redis.pcall('ZREVRANGE', levels_key(name), 0, -1)
    local taken = 0
    if not foreign(levels) then
      for _, level in ipairs(levels) do
        if taken >= want then break end
        local ids = redis.pcall('LRANGE', ready_key(name, level), 0, want - taken - 1)
        if not foreign(ids) then
          for _, id in ipairs(ids) do
            rows[#rows + 1] = {id, -tonumber(level), tonumber(field(id, 'q')) or 0}
          end
          taken = taken + #ids
        end
      end
    end
  end
elseif state == 'd' then
  window(K_DELAYED, false, score, function(id) return tonumber(field(id, 'q')) or 0 end)
elseif state == 'a' then
  window(K_ACTIVE, false, score, numeric_id)
else
  desc = true
  window(finished_key(state), true, function(id) return tonumber(field(id, 'e')) or 0 end,
    numeric_id)
end
table.sort(rows, function(a, b)
  if a[2] ~= b[2] then
    if desc then return a[2] > b[2] end
    return a[2] < b[2]
  end
  if desc then return a[3] > b[3] end
  return a[3] < b[3]
end)
local out = {}
for i = offset + 1, math.min(want, #rows) do out[#out + 1] = snapshot(rows[i][1]) end
return out
