-- Leases: a claimed job held under a token until a deadline, the lease's holder checked,
-- and the token a finished lease leaves to answer a repeated call.

-- Make `id`, just taken from the waiting list of `name`, active under `token` until
-- `deadline` for `dispatcher` ('' = none). Entries whose hash is missing (deleted under
-- the list: the name's waiting count is recounted) or not waiting any more are dropped
-- (nil). A record that is not a whole job of ours
-- -- foreign data under its key (not a hash: replaced by a hash of `name`), or a hash
-- lacking its state, name or creation time -- is claimed all the same and returned as
-- {id, 'corrupt', reason}, so the Python side logs it and fails it with a CorruptJobError
-- under `name`; the waiting counts are recounted, not guessed. Returns {id, fields, logs,
-- deadline}, that, or nil.
local function claim_job(id, name, token, deadline, dispatcher)
  local f = fields(id, 's', 'n', 'm', 'c')
  local reason
  if not f then
    reason = 'its key holds a ' .. redis.call('TYPE', job_key(id))['ok'] .. ', not a job hash'
    redis.call('DEL', job_key(id))
    f = {false, false, false, false}
  elseif not (f[1] and f[2] and f[4]) then
    if redis.call('EXISTS', job_key(id)) == 0 then
      -- Gone under its list entry (deleted by someone else, or an id pushed by someone
      -- else): nobody took it off the counts, so they are recounted from the lists.
      recount_waiting(name)
      return nil
    end
    local missing = {}
    for i, letter in ipairs({'s', 'n', false, 'c'}) do
      if letter and not f[i] then missing[#missing + 1] = letter end
    end
    reason = 'its hash lacks field ' .. table.concat(missing, ', ')
  end
  local state = f[1] or '?'
  local finished = state == 'c' or state == 'f' or state == 'x'
  if state == 'd' or state == 'a' or state == 'b' or finished then return nil end
  local hash = {'s', 'a', 'k', token, 'b', NOWS, 'q', next_seq(), 'm', plus_one(f[3])}
  if f[2] ~= name then
    -- The stored name may differ from the list's (foreign data): the claim renames it.
    hash[#hash + 1] = 'n'
    hash[#hash + 1] = name
  end
  if dispatcher ~= '' then
    hash[#hash + 1] = 'D'
    hash[#hash + 1] = dispatcher
  end
  redis.call('HSET', job_key(id), unpack(hash))
  if state == 'w' and f[2] == name then
    tally(name, 'w', -1)
  else -- foreign data: whether (and under which name) it was counted cannot be told
    recount_waiting(name)
    if f[2] and f[2] ~= name then recount_waiting(f[2]) end
  end
  tally(name, 'a', 1)
  redis.call('ZADD', K_ACTIVE, deadline, id)
  count_active(name, 1)
  if reason then return {id, 'corrupt', reason} end
  return snapshot(id, deadline)
end

-- While the token holds the job's lease (deadline still ahead): the job's {token, name,
-- unique key, waiter count, cancel requested, state, history}; else nil.
local function held(id, token)
  local deadline = redis.call('ZSCORE', K_ACTIVE, id)
  if not deadline or tonumber(deadline) <= NOW then return nil end
  local f = fields(id, 'k', 'n', 'u', 'w', 'C', 's', 'H')
  if not f or f[1] ~= token then return nil end
  return f
end

-- Take the job out of the active set and its name's active count (the caller clears 'k').
local function drop_lease(id, name)
  if redis.call('ZREM', K_ACTIVE, id) == 0 then return end
  if name then count_active(name, -1) end
end
