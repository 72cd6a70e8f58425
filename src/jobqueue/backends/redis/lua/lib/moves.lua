-- Writing a change whose guard held (apply.lua): the job moved from its old state's
-- structure to the new one's, its fields written in one HSET and one HDEL, its unique key
-- taken or freed, waiters woken, counts moved. What to write was decided by the core.

-- An ended lease's call names as stored in field K (see mark_outcome); other names are
-- stored as they are.

-- Take job `id` (in `from`, of `name`, priority text `priority`) out of its state's
-- structure: the waiting list, the delayed set, the lease, or its finished set.
local function leave(id, name, from, priority)
  if from == 'w' then
    unready(id, name, priority)
  elseif from == 'd' then
    redis.call('ZREM', K_DELAYED, id)
  elseif from == 'b' then
    redis.call('ZREM', K_BLOCKED, id)
  elseif from == 'a' then
    drop_lease(id, name)
  elseif from == 'c' or from == 'f' or from == 'x' then
    redis.call('ZREM', finished_key(from), id)
  end
end

-- The history field after the attempt ended as `outcome` (error JSON `err`, '' = none):
-- the record spliced in, or for a completion (implicit record, see record_completion) the
-- room made for it. `put` gets H (and D dropped for a spliced record: the attempt's
-- dispatcher is no longer the job's).
local function end_attempt(f, put, made, to, outcome, err)
  if to == 'c' and outcome == 'completed' and err == '' then
    if f[12] then
      local kept = room_for_completion(f[12])
      if kept ~= f[12] then put.H = kept or false end
    end
    return
  end
  put.H = with_attempt(f[12], made, f[10], f[11], outcome, err ~= '' and err or nil)
  put.D = false
end

-- Write the change whose arguments start at ARGV[i] (see apply.lua) to job `id`, whose
-- fields `f` (LOOK) its guard passed; `delivery` where its delivery starts (flows.lua), or
-- nil.
local function write_change(id, f, i, delivery)
  local to, run_at = ARGV[i + 4], ARGV[i + 5]
  local outcome, err, counted = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local ends, fence, counts_as = ARGV[i + 9], ARGV[i + 10], ARGV[i + 11]
  local from, name, unique = f[1], f[2], f[6]
  local nset, outcomes, pending = tonumber(ARGV[i + 12]), nil, nil
  if delivery then
    nset = nset - 3
    to, outcomes, pending = delivered(id, to, run_at, delivery)
  end
  local put = {s = to, Y = outcomes, Z = pending} -- field -> text, or false to delete it
  -- A blocked job staying blocked keeps its place (its submit order).
  local stays = to == 'b' and from == 'b'
  if (to ~= from or to ~= 'a') and not stays then
    if to == 'a' then return redis.error_reply('ERR apply: a change cannot make a job active') end
    leave(id, name, from, f[8])
    move_count(name, from, to)
  end
  local made = f[9]
  for n = 0, nset - 1 do
    local key, value = ARGV[i + 13 + 2 * n], ARGV[i + 14 + 2 * n]
    put[key] = value ~= '' and value
    if key == 'm' then made = value end
  end
  if put.Y ~= nil and not delivery then -- the outcomes set whole: the count follows them
    put.Y = set_outcomes(id, put.Y)
    local edges = field(id, 'A')
    if edges then put.Z = string.format('%d', pending_count(edges, outcome_ids(id))) end
  end
  if outcome ~= '' then
    end_attempt(f, put, made, to, outcome, err)
    if counted == '0' then put.m = math.max((tonumber(made) or 0) - 1, 0) end
  end
  if from == 'a' and to ~= 'a' then
    if ends ~= '' then -- k stays: the token with the call that ended its lease
      put.K = ends
    else -- ended by nobody's call (a stall): the token answers no repeat
      put.k, put.K = false, false
    end
  end
  if fence == '1' then put.k, put.K = false, false end
  if unique then
    if is_live(to) and not is_live(from) then
      redis.call('HSET', K_UNIQUE, unique, id)
    elseif is_live(from) and not is_live(to) then
      forget_unique(id, unique)
    end
  end
  local finished = to == 'c' or to == 'f' or to == 'x'
  local score
  if finished then
    put.e, put.q, put.w = NOWS, false, false
  elseif to == 'w' or to == 'd' then
    if run_at ~= '' then put.r = string.format('%.17g', NOW + tonumber(run_at)) end
    put.q = next_seq()
    if to == 'd' then
      score = put.r or field(id, 'r') or field(id, 'c') or NOWS
    end
  elseif to == 'b' and not stays then
    put.q = next_seq()
  end
  local hash, gone = {}, {}
  for key, value in pairs(put) do
    if value then
      hash[#hash + 1] = key
      hash[#hash + 1] = value
    else
      gone[#gone + 1] = key
    end
  end
  redis.call('HSET', job_key(id), unpack(hash))
  if #gone > 0 then redis.call('HDEL', job_key(id), unpack(gone)) end
  if finished then
    -- Finished sets are scored by finishing order, so retention drops oldest-finished first.
    redis.call('ZADD', finished_key(to), next_seq(), id)
    notify_waiters(id, f[7])
  elseif to == 'd' then
    redis.call('ZADD', K_DELAYED, score, id)
    signal(name)
  elseif to == 'w' then
    make_ready(id, name, tonumber(f[8]) or 0, put.q)
    signal(name)
  elseif to == 'b' and not stays then
    redis.call('ZADD', K_BLOCKED, put.q, id)
  end
  if counts_as ~= '' then count_outcome(counts_as) end
  return nil
end
