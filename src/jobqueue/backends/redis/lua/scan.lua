#!lua flags=allow-oom
-- Jobs of one selector in their state's listing order (Backend.scan); a read. ARGV[9] state
-- letter, [10] name ('' = any, else '=' .. name), [11] finished before, a time argument
-- ('' = any; finished states only), [12] offset, [13] limit. Returns a list of {id,
-- fields, logs[, deadline]}. Orders: waiting by (priority desc, enqueue order) across
-- names, delayed by (run_at, enqueue order), active by (deadline, id), blocked by enqueue
-- order, finished by (finish time, id) newest first.
local state, offset, limit = ARGV[9], tonumber(ARGV[12]), tonumber(ARGV[13])
local name = ARGV[10] ~= '' and string.sub(ARGV[10], 2) or nil
local before = ARGV[11] ~= '' and tonumber(at(ARGV[11])) or nil
local want = offset + limit
if limit <= 0 then return {} end
local rows = {} -- {id, primary key, tie-break}

-- Whether a finished job is wanted (its name, its finish time); any job passes without filters.
local function wanted(id)
  if not name and not before then return true end
  local f = fields(id, 'n', 'e')
  if not f then return false end
  if name and f[1] ~= name then return false end
  return not before or (tonumber(f[2]) or 0) < before
end

-- The entries of a sorted set in its order until `want` are wanted, plus any further
-- wanted entries tied with the last on the primary key, so the final sort on (primary,
-- tie-break) is exact.
local function window(k, rev, key_of, tie_of)
  local total = redis.call('ZCARD', k)
  local cmd = rev and 'ZREVRANGE' or 'ZRANGE'
  local pos, chunk = 0, want + 1
  while pos < total do
    local ids = redis.call(cmd, k, pos, pos + chunk - 1, 'WITHSCORES')
    if #ids == 0 then return end
    for i = 1, #ids, 2 do
      local primary = key_of(ids[i], ids[i + 1])
      if #rows >= want and primary ~= rows[#rows][2] then return end
      if wanted(ids[i]) then rows[#rows + 1] = {ids[i], primary, tie_of(ids[i])} end
    end
    pos = pos + chunk
    chunk = math.min(chunk * 2, 1000)
  end
end

local function score(_, s) return tonumber(s) end
local function numeric_id(id) return tonumber(id) or 0 end
local function seq_of(id) return tonumber(field(id, 'q')) or 0 end
local desc = false
if state == 'w' then
  -- Per name, the first `want` jobs by (priority desc, enqueue order); the merge sorts.
  local names = name and {name} or redis.call('SMEMBERS', K_NAMES)
  for _, n in ipairs(names) do
    local levels = redis.pcall('ZREVRANGE', levels_key(n), 0, -1)
    local taken = 0
    if not foreign(levels) then
      for _, level in ipairs(levels) do
        if taken >= want then break end
        local ids = redis.pcall('LRANGE', ready_key(n, level), 0, want - taken - 1)
        if not foreign(ids) then
          for _, id in ipairs(ids) do rows[#rows + 1] = {id, -tonumber(level), seq_of(id)} end
          taken = taken + #ids
        end
      end
    end
  end
elseif state == 'd' then
  before = nil
  window(K_DELAYED, false, score, seq_of)
elseif state == 'a' then
  before = nil
  window(K_ACTIVE, false, score, numeric_id)
elseif state == 'b' then
  before = nil
  window(K_BLOCKED, false, score, numeric_id)
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
for n = offset + 1, math.min(want, #rows) do out[#out + 1] = snapshot(rows[n][1]) end
return out
