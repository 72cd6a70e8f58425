-- The counters a call changes -- jobs per name and state, active jobs per name, attempts
-- ended per minute -- noted during the call and written once, at its end (settle).

-- The state letters the per-name counts keep; anything else (foreign data) is not a job's
-- state and is never counted.
local COUNTED_STATES = {w = true, d = true, a = true, c = true, f = true, x = true, b = true}

-- Every change of a job's state or name, and every deletion, goes through here: `by` jobs
-- of `name` enter (+) or leave (-) `state`. Noted, and written by settle at the call's end.
local function tally(name, state, by)
  if not name or not COUNTED_STATES[state] then return end
  local changes = count_changes[name]
  if not changes then
    changes = {}
    count_changes[name] = changes
  end
  changes[state] = (changes[state] or 0) + by
end

-- A name's active count changes by `by` (written by settle).
local function count_active(name, by)
  active_changes[name] = (active_changes[name] or 0) + by
end

-- A job of `name` moves from state `from` to `to`.
local function move_count(name, from, to)
  if from == to then return end
  tally(name, from, -1)
  tally(name, to, 1)
end

-- Count one finished attempt in this minute's hash. It expires once older than the policy
-- keeps; the expiry is set when a field is first written (HINCRBY answers 1), so the hot
-- path pays one HINCRBY and the hash's expiry is the same absolute time whichever field set
-- it.
local function count_outcome(outcome)
  outcome_changes[outcome] = (outcome_changes[outcome] or 0) + 1
end

-- The end of every call (scripts.py wraps each body in it): write the counter changes the
-- call noted, one HINCRBY per counter that changed. A per-name count that reaches zero (or
-- below, in a namespace whose older jobs were never counted) loses its field, and the hash
-- goes with its last field, so an empty name costs nothing; a count that leaves zero lists
-- its name in the names set (never pruned), so the common call spares the SADD. The
-- outcome counts of a minute expire once past keeping. Returns `result`.
local function settle(result)
  for name, changes in pairs(count_changes) do
    local k = name_counts_key(name)
    for state, by in pairs(changes) do
      if by ~= 0 then
        local v = redis.pcall('HINCRBY', k, state, by)
        if foreign(v) then -- not a hash or not a number
          redis.call('SADD', K_NAMES, name)
        elseif v <= 0 then
          redis.call('HDEL', k, state)
        elseif v == by then
          redis.call('SADD', K_NAMES, name)
        end
      end
    end
  end
  for name, by in pairs(active_changes) do
    if by ~= 0 and redis.call('HINCRBY', K_ACTIVE_COUNT, name, by) <= 0 then
      redis.call('HDEL', K_ACTIVE_COUNT, name)
    end
  end
  if next(outcome_changes) then
    local minute = math.floor(clock_now() / 60)
    local k = outcome_key(minute)
    for outcome, by in pairs(outcome_changes) do
      if redis.call('HINCRBY', k, outcome, by) == by then
        redis.call('EXPIRE', k, math.ceil((minute + OUTCOME_MINUTES) * 60 - NOW) + 60)
      end
    end
  end
  return result
end
