-- Guards (apply.lua): whether a change decided by the core may still be written, and when
-- not, the job as found (a conflict). Nothing here decides a rule: the guard says it all.

-- The job fields apply reads, in one HMGET: state, name, lease token, the call that ended
-- it, cancel flag, unique key, waiter count, priority, attempts made, dispatcher, started,
-- history (f[1] .. f[12] below).
local LOOK = {'s', 'n', 'k', 'K', 'C', 'u', 'w', 'p', 'm', 'D', 'b', 'H'}

-- The live job other than `id` that holds unique key `unique`, or nil.
local function unique_holder(id, unique)
  local holder = redis.call('HGET', K_UNIQUE, unique)
  if holder and holder ~= id and is_live(field(holder, 's')) then return holder end
  return nil
end

-- Check a change's guard against the job's fields `f` (LOOK; nil, or no state or name: no
-- such job).
-- `kind` 'h' Held / 'e' Expired (`arg` the lease token) or 's' InState (`arg` the state
-- letters); `cancel` '' (any), '1' or '0': the cancel flag the change was decided for; `to`
-- the state letter it moves to. Returns nil when the guard holds, else the conflict:
-- {state letter ('' = no job), held 0/1, the call that ended the token's lease ('' = none),
-- cancel flag 0/1, the live holder of the unique key ('' = none)}.
local function check_guard(id, f, kind, arg, cancel, to)
  -- A hash without a name is no job of ours (foreign data): its lists cannot be found.
  local state = f and f[2] and f[1] or nil
  local token = kind ~= 's' and arg or nil
  -- (A lease with no token, foreign data, is matched by the token '' that expired.lua gave.)
  local mine = state and token and (f[3] or '') == token
  local deadline
  if mine and state == 'a' then deadline = tonumber(redis.call('ZSCORE', K_ACTIVE, id)) end
  local live_lease = deadline ~= nil and deadline > NOW
  local ok, holder = false, nil
  if not state then
    ok = false
  elseif kind == 'h' then
    ok = live_lease
  elseif kind == 'e' then
    ok = mine and state == 'a' and not live_lease
  else
    ok = string.find(arg, state, 1, true) ~= nil
  end
  if ok and kind ~= 's' and cancel ~= '' then ok = (f[5] == '1') == (cancel == '1') end
  if ok and f[6] and is_live(to) and not is_live(state) then
    holder = unique_holder(id, f[6])
    ok = holder == nil
  end
  if ok then return nil end
  local ended = mine and state ~= 'a' and f[4] or ''
  return {state or '', live_lease and 1 or 0, ended, state and f[5] == '1' and 1 or 0, holder or ''}
end
