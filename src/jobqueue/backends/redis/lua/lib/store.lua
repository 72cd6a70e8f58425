-- Storing new jobs (submit.lua, and claim_tick.lua for a schedule's job).

-- Store one new job, as submit does, from the submit arguments at ARGV[i]: name, priority,
-- unique ('' = none, else '=' .. key), run_at (a time argument), #logs, #field pairs, the
-- log entries, the field/value pairs (every non-default field, encoded). `stored` counts
-- the jobs stored per name, for wake_stored. Returns the index past its arguments, then
-- 'n', the id and the state letter (stored), or 'u' and the id of the live job that holds
-- its unique key (nothing stored).
local function store_job(i, stored)
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
  local state = delayed and 'd' or 'w'
  local seq = draw(seq_block, K_SEQ)
  local hash = {'n', name, 's', state, 'q', seq}
  for k = pairs_at, after - 1 do hash[#hash + 1] = ARGV[k] end
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
  tally(name, state, 1) -- settle lists the name in the names set when its count leaves 0
  if nlogs > 0 then redis.call('RPUSH', log_key(id), unpack(ARGV, logs_at, logs_at + nlogs - 1)) end
  if unique ~= '' then redis.call('HSET', K_UNIQUE, unique, id) end
  if delayed then
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
