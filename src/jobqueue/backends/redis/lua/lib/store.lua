-- Storing new jobs (submit.lua, and claim_tick.lua for a schedule's job).

-- A flow job's field (F flow id, A dependencies, N dependents) with every "@k" -- the k-th
-- job (from 0) of the same submit call -- replaced by that job's id, `ids[k + 1]`. Edges are
-- JSON lists of [job id, rule] whose rules are plain words, so a quoted "@k" can only be
-- an id. Any other field is returned as it is.
local function translated(key, value, ids)
  if key == 'F' then
    local k = string.match(value, '^@(%d+)$')
    return k and ids[tonumber(k) + 1] or value
  elseif key == 'A' or key == 'N' then
    return (string.gsub(value, '"@(%d+)"', function(k)
      local id = ids[tonumber(k) + 1]
      return id and '"' .. id .. '"' or nil
    end))
  end
  return value
end

-- The ids the jobs of a flow's submit call will get, in order, before any is stored (a job
-- may name a later one): store_job draws consecutive ids from the call's block for the jobs
-- it stores, and a job whose unique key a live job (or an earlier one of the call) holds
-- gets that job's id. `i` is the first job's arguments, `n` the number of jobs. Also, per
-- job, whether it has dependencies (a field A): it is stored blocked.
local function flow_ids(i, n)
  local ids, blocked, taken = {}, {}, {}
  local following = id_block[1]
  for job = 1, n do
    local unique, nlogs, npairs = ARGV[i + 2], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
    local pairs_at = i + 6 + nlogs
    local holder
    if unique ~= '' then
      unique = string.sub(unique, 2)
      holder = taken[unique]
      if not holder then
        local existing = redis.call('HGET', K_UNIQUE, unique)
        if existing and is_live(field(existing, 's')) then holder = existing end
      end
    end
    if holder then
      ids[job] = holder
    else
      ids[job] = string.format('%d', following)
      following = following + 1
      if unique ~= '' then taken[unique] = ids[job] end
    end
    for k = pairs_at, pairs_at + 2 * npairs - 2, 2 do
      if ARGV[k] == 'A' then blocked[job] = true end
    end
    i = pairs_at + 2 * npairs
  end
  return {ids = ids, blocked = blocked}
end

-- Store one new job, as submit does, from the submit arguments at ARGV[i]: name, priority,
-- unique ('' = none, else '=' .. key), run_at (a time argument), #logs, #field pairs, the
-- log entries, the field/value pairs (every non-default field, encoded). `stored` counts
-- the jobs stored per name, for wake_stored. Returns the index past its arguments, then
-- 'n', the id and the state letter (stored), or 'u' and the id of the live job that holds
-- its unique key (nothing stored). For the `n`-th job of a flow's call, `flow` is what
-- flow_ids found: a job with dependencies is stored blocked (never ready, nobody woken), and
-- the batch references in its flow fields are translated.
local function store_job(i, stored, flow, n)
  local name, priority, unique, when = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local nlogs, npairs = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local logs_at, pairs_at = i + 6, i + 6 + nlogs
  local relative = string.sub(when, 1, 1) == '+'
  local after = pairs_at + 2 * npairs
  -- Due now or later (as `at` would place it): a job due now ('+0.0', the common case)
  -- reads no clock; a delay, or an absolute run_at, compares with NOW.
  local delayed, run_at = false, when
  if relative then
    local ahead = tonumber(string.sub(when, 2))
    if ahead > 0 then
      local due = clock_now() + ahead
      run_at = string.format('%.17g', due)
      delayed = tonumber(run_at) > clock_now()
    end
  else
    delayed = tonumber(when) > clock_now()
  end
  if unique ~= '' then
    unique = string.sub(unique, 2)
    local existing = redis.call('HGET', K_UNIQUE, unique)
    local state = existing and field(existing, 's')
    if is_live(state) then return after, 'u', existing end
  end
  local id = next_id()
  local blocked = flow and flow.blocked[n]
  local state = blocked and 'b' or delayed and 'd' or 'w'
  local seq = draw(seq_block, K_SEQ)
  local hash = {'n', name, 's', state, 'q', seq}
  local outcomes
  if flow then
    for k = pairs_at, after - 1, 2 do
      hash[#hash + 1] = ARGV[k]
      if ARGV[k] == 'Y' then -- kept in their own hash (set_outcomes, below)
        outcomes = ARGV[k + 1]
        hash[#hash + 1] = '1'
      else
        hash[#hash + 1] = translated(ARGV[k], ARGV[k + 1], flow.ids)
      end
    end
  else
    for k = pairs_at, after - 1 do hash[#hash + 1] = ARGV[k] end
  end
  if relative and delayed then
    -- The due time on the server's clock replaces the client's (a later field wins).
    hash[#hash + 1] = 'r'
    hash[#hash + 1] = run_at
  end
  if nlogs > 0 then
    hash[#hash + 1] = 'L'
    hash[#hash + 1] = '1'
  end
  redis.call('HSET', job_key(id), unpack(hash))
  if outcomes and not set_outcomes(id, outcomes) then redis.call('HDEL', job_key(id), 'Y') end
  tally(name, state, 1) -- settle lists the name in the names set when its count leaves 0
  if nlogs > 0 then redis.call('RPUSH', log_key(id), unpack(ARGV, logs_at, logs_at + nlogs - 1)) end
  if unique ~= '' then redis.call('HSET', K_UNIQUE, unique, id) end
  if blocked then
    redis.call('ZADD', K_BLOCKED, seq, id)
    return after, 'n', id, state
  elseif delayed then
    redis.call('ZADD', K_DELAYED, run_at, id)
  else
    make_ready(id, name, priority, seq)
  end
  stored[name] = (stored[name] or 0) + 1
  return after, 'n', id, state
end

-- After store_job (settle lists the names): hand each job stored to an idle waiter, if any
-- (bounded, see signal).
local function wake_stored(stored)
  for name, count in pairs(stored) do signal(name, count) end
end
