-- Shared definitions (Redis has no `require`). On Redis 7 this file opens the Redis Function
-- library scripts.py builds (one function per script, see load_library): its definitions are
-- made once, at load. Servers without Functions get scripts instead, each preceded by only
-- the definitions below that it uses, directly or through another definition: a Lua script
-- re-creates its locals and closures on every call, so an unused one is pure cost.
-- Each definition starts at a line beginning with `local` (it may declare several names) and
-- owns the comments above it. Every call runs `begin` first.
--
-- Every script is called with KEYS[1] = the namespace's id counter (so Redis Cluster routes
-- it to the shard owning the namespace's hash tag), KEYS[2] = a key of the namespace that
-- never exists (see cluster.py: while the namespace's slot migrates, Redis refuses the call
-- before the script runs, as it cannot find every declared key on one node) and this ARGV
-- header:
--   1 key prefix "jq:{ns}:"   2 now (a Python float repr: exact, never re-formatted by Lua;
--     '' = the server's TIME)   3 max_stalls   4 completed max age in seconds ('' = forever)
--   5 completed max count (-1)   6 failed max age ('')   7 failed max count (-1)
--   8 '1' when this call repeats one whose reply was lost (the first may have been applied)
-- Script-specific arguments start at ARGV[9]. Scripts that use the policy tail (TAIL below)
-- get it appended after their own arguments. All keys derive from the prefix, so they share
-- the hash tag and live on one shard; Redis allows undeclared keys of the script's own slot.
-- Times the client passes as '+seconds' are relative to NOW (see `at`), so a client whose
-- clock is off still gets the lease length, retry delay or due time it asked for.
--
-- Every script but submit starts with `#!lua flags=allow-oom`: at maxmemory (noeviction) the
-- jobs already stored must still renew, log and finish -- finishing is what frees memory --
-- while submit (plain `#!lua`) is refused whole before it runs, so nothing is half-stored.
--
-- Job hash fields (short names keep a queued job small):
--   n name  s state (w d a c f x)  d data JSON  o options JSON  p priority  u unique key
--   c created_at  r run_at (absent = created_at)  m attempts_made  x stalls  b started_at
--   e finished_at  g progress  G progress message  R result JSON  E error JSON
--   k lease token (kept once the lease ends by complete/fail/release/finish_cancelled, so a
--     repeated call with that token reports what the first did; a new claim, a recovery or
--     a retry replaces or clears it)
--   K which call ended the lease k names (see mark_outcome); stale once k changes
--   q sequence (waiting/delayed: enqueue order; active: claim order)
--   w waiter count  L '1' once the job has a log list
--   C '1' when a cancel was requested  D dispatcher id (while active; a COMPLETED job keeps
--     it for its implicit last record, see record_completion)  H attempt history JSON
-- The last three are absent at their defaults, so a waiting job does not grow.
-- Logs live in a separate list (only jobs that log pay for it); field L marks the jobs that
-- have one, so reading a job that never logged skips the list.
--
-- Foreign or corrupt data under the namespace must never raise: reads of a job's hash go
-- through redis.pcall (an error reply comes back as a table with `err`), and `foreign` tells
-- foreign data from any other refusal, which fails the call.

-- A call's values: the header's, and names derived from it. They are declared here and set
-- by `begin`, which every call runs first: as a Redis Function library this file is run
-- once, at FUNCTION LOAD, and its definitions serve every call, so nothing a call computes
-- may linger into the next (the per-call caches further down are reset by `begin` too).
local P, NOWS, NOW, REPEAT, MAX_STALLS
local K_SEQ, K_DELAYED, K_ACTIVE, K_UNIQUE, K_NAMES, K_ACTIVE_COUNT, K_PAUSED
-- Live dispatchers by expiry; each one's record is the hash dispatcher_key(id).
local K_DISPATCHERS
-- Idle waiters' records by token (see register_waiter).
local K_WAITERS
-- Present when every job of the namespace has been counted in the per-name counts (see
-- name_counts_key): submit sets it when it stores the namespace's first job ever. A
-- namespace that held jobs before the counts existed never gets it, and count_by_name
-- counts that one the slow way.
local K_COUNTED
-- Periodic schedules (see claim_tick.lua): the names, one record hash and one list of recent
-- ticks per schedule (schedule_key, schedule_ticks_key).
local K_SCHEDULES
-- The policy tail: values from jobqueue.lifecycle that script_command appends after the
-- script's own arguments, only for the scripts that use these names (so renew, log and
-- progress never pay for them): history bound, cancelled max age in seconds ('' = forever,
-- an age like ARGV[4] and [6]) and max count (-1), the stall error JSON split around its
-- stall count, and how many minutes of outcome counts are kept.
local TAIL, MAX_HISTORY, OUTCOME_MINUTES
-- Per-call caches, described where they are used; `maintained` once maintain() ran.
local paused_names, reserved_seq, claimed_by, maintained
-- Ids and sequence numbers taken ahead for the jobs a submit call stores (reserve_numbers).
local id_block, seq_block
-- Counter changes a call makes, written once, at its end (settle): per name and state, the
-- jobs that entered (+) or left (-) it (tally); per name, the change of its active count;
-- per outcome, the attempts that ended so (count_outcome). A batch of 50 finishes and 50
-- claims then costs a few HINCRBYs, not hundreds.
local count_changes, active_changes, outcome_changes

-- The server's clock: leases taken from many hosts are measured on one clock, so a host whose
-- clock runs ahead cannot see a live lease as expired. (Redis 7 replicates a script's
-- effects, not the script, so reading TIME before writing is allowed.)
local function server_now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- The start of every call: the values above from ARGV (the script's, or in a Redis
-- Function the callback's `args`, bound to the library's ARGV first). `clock` is false for
-- the scripts that never read NOW (scripts.py tells), sparing them the server's TIME; those
-- that read it only sometimes (submit: only for a delayed job) ask `clock_now` instead.
local function begin(clock)
  P = ARGV[1]
  NOWS = clock and (ARGV[2] ~= '' and ARGV[2] or server_now()) or nil
  NOW = clock and tonumber(NOWS) or nil
  REPEAT = ARGV[8] == '1'
  MAX_STALLS = tonumber(ARGV[3])
  K_SEQ, K_DELAYED, K_ACTIVE, K_UNIQUE = P .. 'q', P .. 'd', P .. 'a', P .. 'u'
  K_NAMES, K_ACTIVE_COUNT, K_PAUSED = P .. 'N', P .. 'ac', P .. 'paused'
  K_DISPATCHERS, K_COUNTED, K_SCHEDULES = P .. 'dispatchers', P .. 'nc', P .. 'schedules'
  K_WAITERS = P .. 'W'
  TAIL = #ARGV - 6
  MAX_HISTORY = tonumber(ARGV[TAIL + 1])
  OUTCOME_MINUTES = tonumber(ARGV[TAIL + 6])
  paused_names, reserved_seq, claimed_by, maintained = nil, nil, nil, false
  id_block, seq_block = nil, nil
  count_changes, active_changes, outcome_changes = {}, {}, {}
end

-- NOW, read on first use by a call whose `begin` skipped it (scripts.py does not count a
-- script using only this as reading the clock): the common submit, of jobs due now, never
-- pays for TIME. With effects replication (Redis 5+ by default, always on 7) a TIME after
-- the call's first write is allowed.
local function clock_now()
  if not NOW then
    NOWS = ARGV[2] ~= '' and ARGV[2] or server_now()
    NOW = tonumber(NOWS)
  end
  return NOW
end

-- Housekeeping does at most this much per call, so no call runs long.
local BATCH = 1000

-- A time argument: '+seconds' from NOW, or an absolute time passed through unchanged.
local function at(t)
  if string.sub(t, 1, 1) == '+' then return string.format('%.17g', NOW + tonumber(string.sub(t, 2))) end
  return t
end

-- A retention age in seconds as the cut-off time on NOW ('' = no age limit).
local function cutoff(age)
  if age == '' then return nil end
  return NOW - tonumber(age)
end

local function job_key(id) return P .. 'j:' .. id end
local function log_key(id) return P .. 'l:' .. id end
-- Waiting jobs: one list per (name, priority) in enqueue order -- a list entry costs a few
-- bytes where a sorted-set entry costs ~100 -- plus a per-name zset of the priority levels
-- that have waiting jobs.
local function ready_key(name, priority) return P .. 'r:' .. name .. ':' .. priority end
local function levels_key(name) return P .. 'R:' .. name end
-- Idle waiters (see signal): per name, a list of the tokens registered as waiting for its
-- jobs (a '~' before the token: wake it, do not hand it a job); per token, its record in the
-- hash K_WAITERS and its inbox, the list it blocks on.
local function waiters_key(name) return P .. 'w:' .. name end
local function inbox_key(token) return P .. 'h:' .. token end
local function done_key(id) return P .. 'x:' .. id end
local function finished_key(state) return P .. state end
local function dispatcher_key(id) return P .. 'dispatcher:' .. id end
-- Per-name counts: one field per state letter that has jobs of the name, so a dashboard
-- reads O(names) instead of walking every job.
local function name_counts_key(name) return P .. 'n:' .. name end

-- Periodic schedules: one record hash and one list of recent ticks per schedule.
local function schedule_key(name) return P .. 'S:' .. name end
local function schedule_ticks_key(name) return P .. 'T:' .. name end

-- The state letters the per-name counts keep; anything else (foreign data) is not a job's
-- state and is never counted.
local COUNTED_STATES = {w = true, d = true, a = true, c = true, f = true, x = true}

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

-- The paused names, read once per call (claims look at every wanted name, often many times).
local function is_paused(name)
  if not paused_names then
    paused_names = {}
    for _, n in ipairs(redis.call('SMEMBERS', K_PAUSED)) do paused_names[n] = true end
  end
  return paused_names[name] == true
end

-- Whether `v`, a redis.pcall reply, is the error of foreign data: a key holding another type
-- (WRONGTYPE) or a counted value that is no integer. Any other error is raised, failing the
-- whole call: a Redis Cluster refusing a key ("non local key") must not pass for a missing
-- job, which a claim would drop; the client reports the refusal as retryable.
local function foreign(v)
  if type(v) ~= 'table' or not v.err then return false end
  local e = tostring(v.err) -- a string, or on fakeredis (lupa) a Python bytes object
  if string.find(e, 'WRONGTYPE', 1, true) or string.find(e, 'not an integer', 1, true)
    or string.find(e, 'overflow', 1, true) then
    return true
  end
  error(v)
end

-- The job's hash field, or nil when the key is missing or not a hash (foreign data).
local function field(id, name)
  local v = redis.pcall('HGET', job_key(id), name)
  if v == false or foreign(v) then return nil end
  return v
end

-- Several fields at once (false where missing), or nil when the key is not a hash.
local function fields(id, ...)
  local v = redis.pcall('HMGET', job_key(id), ...)
  if foreign(v) then return nil end
  return v
end

local function is_job(id)
  local v = redis.pcall('HLEN', job_key(id))
  return not foreign(v) and v > 0
end

-- HINCRBY that survives a corrupt (non-integer) field by starting it over.
local function incr_field(id, name, by)
  local v = redis.pcall('HINCRBY', job_key(id), name, by)
  if foreign(v) then
    redis.call('HSET', job_key(id), name, by)
    return by
  end
  return v
end

-- A stored counter plus one, as HINCRBY would count it (anything but an integer restarts).
local function plus_one(text)
  if text and #text < 16 and string.find(text, '^%-?%d+$') then return tonumber(text) + 1 end
  return 1
end

-- A job as the scripts return it: {id, fields, logs}, plus for an active job its lease
-- deadline (the active set's score, or `deadline` when the caller has just set it, so a
-- claim reads nothing more).
local function snapshot(id, deadline)
  local hash = redis.pcall('HGETALL', job_key(id))
  if foreign(hash) then return {id, 'corrupt'} end
  local logs, active = nil, false
  for i = 1, #hash, 2 do
    if hash[i] == 'L' then
      logs = redis.call('LRANGE', log_key(id), 0, -1)
    elseif hash[i] == 's' then
      active = hash[i + 1] == 'a'
    end
  end
  if active then
    return {id, hash, logs or {}, deadline or redis.call('ZSCORE', K_ACTIVE, id) or nil}
  end
  return {id, hash, logs or {}}
end

-- reserved_seq, a sequence number taken ahead: complete+claim takes the finish's and the next one with one
-- INCRBY; the next next_seq() call uses it, so every number is the one INCR would have given.

-- The next number of a block taken ahead (reserve_numbers, reserve_seqs), or INCR of `key`
-- when none is left.
local function draw(block, key)
  if block and block[1] <= block[2] then
    block[1] = block[1] + 1
    return block[1] - 1
  end
  return redis.call('INCR', key)
end

-- Up to `n` sequence numbers for a call's steps, taken with one INCRBY (next_seq draws from
-- them; the unused ones are a gap, which orders nothing differently).
local function reserve_seqs(n)
  if n < 2 then return end
  local top = redis.call('INCRBY', K_SEQ, n)
  seq_block = {top - n + 1, top}
end

-- The next sequence number (the reserved one first).
local function next_seq()
  local seq = reserved_seq
  if seq then
    reserved_seq = nil
    return seq
  end
  return draw(seq_block, K_SEQ)
end

-- Pop the next waiting id of one name, or nil. A level the pop leaves empty stays listed
-- until the next look at it (here or in head_of) drops it; an empty level counts and lists
-- as nothing, and make_ready re-adding it is harmless.
local function pop_head(name)
  local levels = levels_key(name)
  for _ = 1, 100 do
    local top = redis.pcall('ZREVRANGE', levels, 0, 0)
    if foreign(top) or not top[1] then return nil end
    local list = ready_key(name, top[1])
    local id = redis.pcall('LPOP', list)
    if id == false or foreign(id) then
      redis.call('ZREM', levels, top[1]) -- empty, or not a list (foreign data)
    else
      return id
    end
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

-- Make `id`, just taken from the waiting list of `name`, active under `token` until
-- `deadline` for `dispatcher` ('' = none). Entries whose hash is missing (a job removed
-- since) or not waiting any more are dropped (nil). A record that is not a whole job of ours
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
    if redis.call('EXISTS', job_key(id)) == 0 then return nil end
    local missing = {}
    for i, letter in ipairs({'s', 'n', false, 'c'}) do
      if letter and not f[i] then missing[#missing + 1] = letter end
    end
    reason = 'its hash lacks field ' .. table.concat(missing, ', ')
  end
  local state = f[1] or '?'
  local finished = state == 'c' or state == 'f' or state == 'x'
  if state == 'd' or state == 'a' or finished then return nil end
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

-- How long past the end of its announced wait an idle waiter's registration is honoured:
-- a waiter that died while blocked costs at most one job a lease (recovered) within it.
local WAITER_GRACE = 1

-- An idle waiter blocks on its inbox for at most `wait` seconds. Its record (JSON) holds
-- when it stops being honoured (e), its lease ('+seconds'; '' = never hand it a job) (l),
-- its dispatcher id (d) and, per name, the entry it left in that name's list (n: name,
-- entry, name, entry...). `entries` are those pairs.
local function register_waiter(token, lease, dispatcher, wait, entries)
  for i = 1, #entries, 2 do redis.call('LPUSH', waiters_key(entries[i]), entries[i + 1]) end
  local expires = string.format('%.17g', NOW + wait + WAITER_GRACE)
  local record = {e = expires, l = lease, d = dispatcher, n = entries}
  redis.call('HSET', K_WAITERS, token, cjson.encode(record))
end

-- Forget a waiter's registration: its entry in every name's list and its record.
local function withdraw_waiter(token, entries)
  for i = 1, #entries, 2 do redis.call('LREM', waiters_key(entries[i]), 0, entries[i + 1]) end
  redis.call('HDEL', K_WAITERS, token)
end

-- Push a message to a waiter's inbox: a handed job (its snapshot as JSON) or 'w' (woken: it
-- claims for itself). The inbox expires, so one a dead waiter never read goes.
local function deliver(token, message)
  local k = inbox_key(token)
  redis.call('LPUSH', k, message)
  redis.call('EXPIRE', k, 60)
end

-- Jobs of `name` became ready: for each (up to `n`, at most 64), the longest-idle waiter
-- registered on the name gets the next one handed to it -- claimed under the waiter's token
-- and lease and pushed to its inbox, so it starts the job without a claim of its own -- or,
-- where it asked only to be woken (a plain wait, or a name capped by max_active), a wake-up.
-- Nobody waiting costs one RPOP. A paused name hands nothing and wakes nobody (resume
-- signals it). A registration whose waiter must have died (past its wait and grace) is
-- dropped on the way. It reads the clock only through clock_now, before anything that
-- uses NOW (scripts.py counts it as reading the clock lazily).
local function signal(name, n)
  local k = waiters_key(name)
  for _ = 1, math.min(n or 1, 64) do
    local entry = redis.call('RPOP', k)
    if not entry then return end
    if is_paused(name) then
      redis.call('RPUSH', k, entry)
      return
    end
    local wake = string.sub(entry, 1, 1) == '~'
    local token = wake and string.sub(entry, 2) or entry
    local text = redis.call('HGET', K_WAITERS, token)
    local ok, record = pcall(cjson.decode, text or '')
    if ok and type(record) == 'table' and type(record.n) == 'table' then
      clock_now()
      if (tonumber(record.e) or 0) <= NOW then
        withdraw_waiter(token, record.n)
      elseif wake then
        withdraw_waiter(token, record.n)
        deliver(token, 'w')
      else
        local job
        for _ = 1, 100 do
          local id = pop_head(name)
          if not id then break end
          job = claim_job(id, name, token, at(record.l), record.d)
          if job then break end
        end
        if not job then -- nothing left to hand over: it goes on waiting
          redis.call('RPUSH', k, entry)
          return
        end
        withdraw_waiter(token, record.n)
        deliver(token, cjson.encode(job))
      end
    end
  end
end

-- Append to the waiting list of its priority; the first job of a level registers it.
local function make_ready(id, name, priority)
  if redis.call('RPUSH', ready_key(name, priority), id) == 1 then
    redis.call('ZADD', levels_key(name), priority, priority)
  end
end

-- Ids for the next `n` jobs, one block per call: the first is max(counter + 1, the server's
-- TIME in microseconds), so a replica promoted before it caught up (or a restored backup)
-- jumps past every id its predecessor acknowledged -- as long as the failover took longer
-- than the clock difference between the two hosts. Ids stay below 2^53 (exact as Lua
-- numbers) until the year 2255. A counter still at 0 means the namespace's first job ever:
-- every job it will hold is counted by name (K_COUNTED).
local function reserve_ids(n)
  local t = redis.call('TIME')
  local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local top = redis.call('INCRBY', P .. 'id', n)
  if top == n then redis.call('SET', K_COUNTED, '1') end
  if top - n + 1 < floor then
    top = floor + n - 1
    redis.call('SET', P .. 'id', string.format('%d', top))
  end
  id_block = {top - n + 1, top}
end

-- The next id of the call's block (a block of one when none is left), as decimal text
-- (tostring would print a 16-digit number as 1.7966016001235e+15).
local function next_id()
  if not (id_block and id_block[1] <= id_block[2]) then reserve_ids(1) end
  id_block[1] = id_block[1] + 1
  return string.format('%d', id_block[1] - 1)
end

-- Ids and sequence numbers for the `n` jobs a submit call is about to store, taken with one
-- INCRBY each instead of an INCR per job; store_job draws from them. A job deduplicated onto
-- a live one leaves its numbers unused: ids stay unique and increasing, with a gap.
local function reserve_numbers(n)
  reserve_ids(n)
  if n < 2 then return end
  reserve_seqs(n)
end

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
    if state == 'w' or state == 'd' or state == 'a' then return after, 'u', existing end
  end
  local id = next_id()
  local state = delayed and 'd' or 'w'
  local hash = {'n', name, 's', state, 'q', draw(seq_block, K_SEQ)}
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
    make_ready(id, name, priority)
  end
  stored[name] = (stored[name] or 0) + 1
  return after, 'n', id, state
end

-- After store_job (settle lists the names): hand each job stored to an idle waiter, if any
-- (bounded, see signal).
local function wake_stored(stored)
  for name, count in pairs(stored) do signal(name, count) end
end

-- Take a waiting job out of its list (O(list length): only removal needs it, never a claim).
local function unready(id, name, priority)
  local level = tonumber(priority) or 0
  local k = ready_key(name, level)
  redis.call('LREM', k, 0, id)
  if redis.call('LLEN', k) == 0 then redis.call('ZREM', levels_key(name), level) end
end

-- The next job of one name without taking it: {priority, id} or nil. Drops empty levels.
local function head_of(name)
  for _ = 1, 100 do
    local top = redis.pcall('ZREVRANGE', levels_key(name), 0, 0)
    if foreign(top) or not top[1] then return nil end
    local id = redis.pcall('LINDEX', ready_key(name, top[1]), 0)
    if id ~= false and not foreign(id) then return {tonumber(top[1]), id} end
    redis.call('ZREM', levels_key(name), top[1])
  end
  return nil
end


-- Back to WAITING (or DELAYED until run_at) at the end of the line, like a new submission,
-- writing `key` = `value` too when given. The lease token stays (see field k); recovery,
-- whose holder must stay fenced, deletes it first. Returns the new state letter.
local function requeue(id, run_at, key, value)
  local j = job_key(id)
  local f = redis.call('HMGET', j, 'n', 'p', 's')
  local name = f[1]
  local state = tonumber(run_at) > NOW and 'd' or 'w'
  move_count(name, f[3], state)
  local seq = next_seq()
  if key then
    redis.call('HSET', j, 's', state, 'r', run_at, 'q', seq, key, value)
  else
    redis.call('HSET', j, 's', state, 'r', run_at, 'q', seq)
  end
  if state == 'd' then
    redis.call('ZADD', K_DELAYED, run_at, id)
  else
    make_ready(id, name, tonumber(f[2]) or 0)
  end
  signal(name)
  return state
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

-- For a call whose lease is gone: the state the token's own earlier call of the same `kind`
-- left (one of the letters in `states`) -- the job still carries its token in k and the
-- call's kind in K -- else nil. Marked (lost reply) and unmarked repeats alike: outcomes are
-- idempotent per lease token. A kind that differs (complete after fail) is refused; a job
-- finished before K existed has none and is judged by its state alone.
local function repeated(id, token, states, kind)
  local f = fields(id, 's', 'k', 'K')
  if not f or f[2] ~= token or type(f[1]) ~= 'string' then return nil end
  if f[3] and f[3] ~= kind then return nil end
  if not string.find(states, f[1], 1, true) then return nil end
  return f[1]
end

-- Which call ended the token's lease ('c' complete, 'f' fail, 'r' release, 'x'
-- finish_cancelled), so a repeat of a different call is refused. Only meaningful while k
-- still holds that token: a claim replaces k and a recovery or retry deletes it.
local function mark_outcome(id, kind)
  redis.call('HSET', job_key(id), 'K', kind)
end

-- Take the job out of the active set and its name's active count (the caller clears 'k').
local function drop_lease(id, name)
  if redis.call('ZREM', K_ACTIVE, id) == 0 then return end
  if name then count_active(name, -1) end
end

-- wait_for_finish registers waiters in field w; wake exactly that many.
local function notify_waiters(id, count)
  local waiting = tonumber(count)
  if waiting and waiting > 0 then
    local k = done_key(id)
    for _ = 1, math.min(waiting, 1000) do redis.call('LPUSH', k, '1') end
    redis.call('EXPIRE', k, 300)
  end
end

local function forget_unique(id, unique)
  if unique and redis.call('HGET', K_UNIQUE, unique) == id then
    redis.call('HDEL', K_UNIQUE, unique)
  end
end

-- COMPLETED, FAILED or CANCELLED with `key` (R or E, or nil) set to `value`, in one write.
-- `job` is the {token, name, unique key, waiter count} that `held` returned. With `reserve`,
-- the sequence number after the finish's is taken too (see next_seq).
local function finish(id, state, job, key, value, reserve, outcome)
  local j = job_key(id)
  move_count(job[2], job[6] or field(id, 's'), state)
  local hash = {'s', state, 'e', NOWS}
  if key then
    hash[5], hash[6] = key, value
  end
  if outcome then -- mark_outcome, in the same write
    hash[#hash + 1] = 'K'
    hash[#hash + 1] = outcome
  end
  redis.call('HSET', j, unpack(hash))
  redis.call('HDEL', j, 'q', 'w') -- k stays: it answers a repeat of this call
  local seq
  if reserve and not reserved_seq then
    reserved_seq = redis.call('INCRBY', K_SEQ, 2)
    seq = reserved_seq - 1
  else
    seq = next_seq()
  end
  -- Finished sets are scored by finishing order, so retention drops oldest-finished first.
  redis.call('ZADD', finished_key(state), seq, id)
  forget_unique(id, job[3])
  notify_waiters(id, job[4])
end

-- Delete a job and every trace of it, whatever its state (also tolerates foreign data).
local function drop_job(id)
  local f = fields(id, 'n', 's', 'p', 'u', 'w') or {}
  local name, state = f[1], f[2]
  local finished = state == 'c' or state == 'f' or state == 'x'
  if name and not (state == 'd' or state == 'a' or finished) then
    unready(id, name, f[3])
  end
  redis.call('ZREM', K_DELAYED, id)
  drop_lease(id, name)
  redis.call('ZREM', finished_key('c'), id)
  redis.call('ZREM', finished_key('f'), id)
  redis.call('ZREM', finished_key('x'), id)
  forget_unique(id, f[4])
  notify_waiters(id, f[5])
  tally(name, state, -1)
  return redis.call('DEL', job_key(id), log_key(id))
end

-- policy.stalled_error's JSON with the stall count put in (the text is written once, there).
local function stalled_error(stalls) return ARGV[TAIL + 4] .. stalls .. ARGV[TAIL + 5] end

-- Finished attempts per minute, for throughput charts: hash `P o:MINUTE` (MINUTE =
-- floor(unix seconds / 60) on NOW), field c completed, f failed, r retried, x cancelled.
local function outcome_key(minute) return P .. 'o:' .. string.format('%d', minute) end

-- Count one finished attempt in this minute's hash. It expires once older than the policy
-- keeps; the expiry is set when a field is first written (HINCRBY answers 1), so the hot
-- path pays one HINCRBY and the hash's expiry is the same absolute time whichever field set
-- it.
local function count_outcome(outcome)
  outcome_changes[outcome] = (outcome_changes[outcome] or 0) + 1
end

-- `history` (field H's text) cut to its newest `keep` records. Every record starts with
-- {"number": -- a text that cannot occur inside a JSON string (its quote would be escaped)
-- -- so records are counted and the oldest cut without decoding the list.
local function cut_history(history, keep)
  local starts = {}
  local pos = 2
  while true do
    local found = string.find(history, '{"number":', pos, true)
    if not found then break end
    starts[#starts + 1] = found
    pos = found + 10
  end
  if #starts <= keep then return history end
  if keep <= 0 then return nil end
  return '[' .. string.sub(history, starts[#starts - keep + 1])
end

-- Append the record of the attempt that just ended to the job's history (field H, cut to
-- MAX_HISTORY) and forget its dispatcher. `outcome` is an AttemptOutcome value, `err` error
-- JSON or nil. The record is JSON text spliced by hand: cjson would print the timestamps
-- with 14 digits (losing sub-second precision), so the exact stored texts are copied in and
-- cjson only quotes the dispatcher id.
local function record_attempt(id, outcome, err)
  local f = fields(id, 'm', 'D', 'b', 'H')
  if not f then return end
  -- Stored texts go in only when they are JSON numbers (a corrupt field must not make the
  -- whole history unreadable); Python's repr of a float always is one.
  local number = tostring(math.floor(tonumber(f[1]) or 0))
  local started = f[3] and string.find(f[3], '^%-?%d+%.?%d*[eE]?[-+]?%d*$') and f[3] or 'null'
  local entry = '{"number":' .. number .. ',"dispatcher":'
    .. (f[2] and cjson.encode(f[2]) or 'null') .. ',"started_at":' .. started
    .. ',"finished_at":' .. NOWS .. ',"outcome":"' .. outcome .. '","error":'
    .. (err or 'null') .. '}'
  local history = f[4]
  if not history or string.sub(history, 1, 11) ~= '[{"number":' then
    history = '[' .. entry .. ']'
  else
    history = cut_history(string.sub(history, 1, -2) .. ',' .. entry .. ']', MAX_HISTORY)
  end
  redis.call('HSET', job_key(id), 'H', history)
  redis.call('HDEL', job_key(id), 'D')
end

-- A completion's record is implicit: attempts made (m), dispatcher (D, kept for it), started
-- (b) and finished (e) of the COMPLETED job say everything it would, and the codec appends
-- it to H when decoding. So a job completed on its first attempt stores no history at all:
-- a spliced record is over 64 bytes, which would turn the whole hash from Redis's compact
-- listpack into a hashtable (hash-max-listpack-value) -- three times the memory of every
-- retained job. H keeps room for the implicit record.
local function record_completion(id, history)
  if not history then return end
  -- An unreadable H goes, as record_attempt would replace it: the history starts over.
  local kept = string.sub(history, 1, 11) == '[{"number":' and cut_history(history, MAX_HISTORY - 1)
  if not kept then
    redis.call('HDEL', job_key(id), 'H')
  elseif kept ~= history then
    redis.call('HSET', job_key(id), 'H', kept)
  end
end

-- COMPLETED with its result, the lease's holder `job` (from held): the lease dropped, room
-- made in the history for the completion's implicit record, 'K' marking complete as the
-- call that ended the lease (see mark_outcome). `reserve` as finish's.
local function complete_held(id, job, result, reserve)
  drop_lease(id, job[2])
  record_completion(id, job[7])
  finish(id, 'c', job, 'R', result, reserve, 'c')
  count_outcome('c')
end

-- A held job's failed attempt (`job` as `held` returned it, the lease already dropped):
-- CANCELLED when a cancel was requested (never run again), else FAILED without `retry_at`
-- ('') or back in line for it (a time argument, see `at`). Returns the new state letter.
local function fail_held(id, job, err, retry_at)
  if job[5] == '1' then
    record_attempt(id, 'cancelled', err)
    finish(id, 'x', job, 'E', err)
    count_outcome('x')
    return 'x'
  elseif retry_at == '' then
    record_attempt(id, 'failed', err)
    finish(id, 'f', job, 'E', err)
    count_outcome('f')
    return 'f'
  end
  record_attempt(id, 'retried', err)
  count_outcome('r')
  return requeue(id, at(retry_at), 'E', err)
end

-- The list `P stalled`: ids of the jobs recover() ended a lease of, oldest first, until
-- take_recovered reports them (maintain.lua, recover.lua) -- whichever call recovered them,
-- a claim included, so each recovery reaches one dispatcher's jobqueue_job_stalled. At most
-- this many are kept when nobody maintains.
local RECOVERED_KEPT = 10000

-- Expired leases go back to waiting (a stall counted) or fail past max_stalls -- or end
-- CANCELLED when a cancel was requested; in claim order, like the reference backend.
local function recover()
  local ids = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', NOWS, 'LIMIT', 0, BATCH)
  if #ids == 0 then return 0 end
  local order = {}
  for i, id in ipairs(ids) do order[i] = {id, tonumber(field(id, 'q')) or 0} end
  table.sort(order, function(a, b) return a[2] < b[2] end)
  local recovered = {}
  for _, entry in ipairs(order) do
    local id = entry[1]
    drop_lease(id, field(id, 'n'))
    if is_job(id) then
      recovered[#recovered + 1] = id
      redis.call('HDEL', job_key(id), 'k') -- the expired holder is fenced, repeat or not
      local stalls = incr_field(id, 'x', 1)
      record_attempt(id, 'stalled', nil)
      if field(id, 'C') == '1' then
        finish(id, 'x', fields(id, 'k', 'n', 'u', 'w'))
        count_outcome('x')
      elseif stalls > MAX_STALLS then
        finish(id, 'f', fields(id, 'k', 'n', 'u', 'w'), 'E', stalled_error(stalls))
        count_outcome('f')
      else
        requeue(id, NOWS)
        count_outcome('r')
      end
    end
  end
  if #recovered > 0 then
    local kept = redis.call('RPUSH', P .. 'stalled', unpack(recovered))
    if kept > RECOVERED_KEPT then redis.call('LTRIM', P .. 'stalled', -RECOVERED_KEPT, -1) end
  end
  return #ids
end

-- Take up to BATCH ids from the list `P stalled` (see RECOVERED_KEPT): the jobs as they are
-- now (a removed one left out), and whether more are listed. A reply lost on the way loses
-- these reports (not the recoveries): a repeat cannot tell what the first run took.
local function take_recovered()
  local k = P .. 'stalled'
  local ids = redis.call('LRANGE', k, 0, BATCH - 1)
  if #ids == 0 then return {}, false end
  redis.call('LTRIM', k, #ids, -1)
  local jobs = {}
  for _, id in ipairs(ids) do
    if is_job(id) then jobs[#jobs + 1] = snapshot(id) end
  end
  return jobs, #ids >= BATCH
end

-- Due delayed jobs become waiting, in (run_at, enqueue order).
local function promote()
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOWS, 'WITHSCORES', 'LIMIT', 0, BATCH)
  if #due == 0 then return 0 end
  local order = {}
  for i = 1, #due, 2 do
    order[#order + 1] = {due[i], tonumber(due[i + 1]), tonumber(field(due[i], 'q')) or 0}
  end
  table.sort(order, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for _, entry in ipairs(order) do
    local id = entry[1]
    redis.call('ZREM', K_DELAYED, id)
    local f = fields(id, 'n', 's', 'p') or {}
    local name = f[1]
    if name and f[2] == 'd' then
      redis.call('HSET', job_key(id), 's', 'w', 'q', next_seq())
      move_count(name, 'd', 'w')
      make_ready(id, name, tonumber(f[3]) or 0)
      signal(name)
    end
  end
  return #due / 2
end

-- Drop the oldest-finished jobs while there are more than `count` (-1: no limit) or the
-- oldest finished at or before `cutoff` (nil: no limit), at most BATCH per call. Returns
-- how many it dropped.
local function retain(state, cutoff, count)
  if count < 0 and not cutoff then return 0 end
  local k = finished_key(state)
  local size = redis.call('ZCARD', k)
  local excess = count < 0 and 0 or size - count
  if size == 0 or (excess <= 0 and not cutoff) then return 0 end
  local dropped = 0
  while dropped < BATCH do
    -- The ones over the count, plus the next (whose age decides whether to go on).
    local ids = redis.call('ZRANGE', k, 0, math.min(math.max(excess - dropped, 0), BATCH))
    if #ids == 0 then return dropped end
    for _, id in ipairs(ids) do
      local f = fields(id, 's', 'e', 'u', 'w', 'n')
      if dropped >= excess and (not cutoff or (f and tonumber(f[2]) or 0) > cutoff) then
        return dropped
      end
      if f and f[1] == state then -- the usual case: only the finished set holds it
        redis.call('ZREM', k, id)
        forget_unique(id, f[3])
        notify_waiters(id, f[4])
        tally(f[5], state, -1)
        redis.call('DEL', job_key(id), log_key(id))
      else
        drop_job(id)
      end
      dropped = dropped + 1
    end
  end
  return dropped
end

-- What every claim and idle poll does first (reads never do). Returns how many jobs it
-- moved or removed.
local function maintain()
  if maintained then return 0 end -- once a call: a batch of claims shares one look
  maintained = true
  return promote() + recover()
    + retain('c', cutoff(ARGV[4]), tonumber(ARGV[5]))
    + retain('f', cutoff(ARGV[6]), tonumber(ARGV[7]))
    + retain('x', cutoff(ARGV[TAIL + 2]), tonumber(ARGV[TAIL + 3]))
end

-- Take the next waiting id among the names listed from ARGV[base] (count, then name/cap
-- pairs; cap -1 = no cap), paused names left out: highest priority, then enqueue order.
-- Returns name, id or nil.
local function take_next(base)
  local count = tonumber(ARGV[base])
  local best, best_name, best_seq
  for i = 0, count - 1 do
    local name = ARGV[base + 1 + 2 * i]
    local cap = tonumber(ARGV[base + 2 + 2 * i])
    local open = cap < 0
    if is_paused(name) then
      open = false
    elseif not open then
      local active = (tonumber(redis.call('HGET', K_ACTIVE_COUNT, name)) or 0)
        + (active_changes[name] or 0)
      open = active < cap
    end
    if open then
      if count == 1 then return name, pop_head(name) end
      local head = head_of(name)
      if head and best and head[1] == best[1] then
        -- Same priority: the earlier enqueued wins (sequences read only for a tie).
        best_seq = best_seq or tonumber(field(best[2], 'q')) or 0
        local seq = tonumber(field(head[2], 'q')) or 0
        if seq < best_seq then best, best_name, best_seq = head, name, seq end
      elseif head and (best == nil or head[1] > best[1]) then
        best, best_name, best_seq = head, name, nil
      end
    end
  end
  if not best then return nil end
  redis.call('LPOP', ready_key(best_name, best[1])) -- an emptied level goes lazily (pop_head)
  return best_name, best[2]
end

-- On a repeat: which active job a lease token holds, so a claim whose reply was lost hands
-- out the job its first run took instead of leaving that one to stall. The map is built once
-- per call, O(active jobs), and only for repeats.
local function claimed_before(token)
  if not REPEAT then return nil end
  if not claimed_by then
    claimed_by = {}
    for _, id in ipairs(redis.call('ZRANGE', K_ACTIVE, 0, -1)) do
      local k = field(id, 'k')
      if k then claimed_by[k] = id end
    end
  end
  return claimed_by[token]
end

-- Claim the next job (see take_next). ARGV[base] is the claiming dispatcher's id ('' =
-- none), the names follow. `lease` is a time argument (see `at`). Returns {id, fields, logs,
-- deadline} or nil.
local function claim(token, lease, base)
  maintain()
  local before = claimed_before(token)
  if before then return snapshot(before) end
  local deadline = at(lease)
  local dispatcher = ARGV[base]
  for _ = 1, 100 do
    local name, id = take_next(base + 1)
    if not id then return nil end
    local job = claim_job(id, name, token, deadline, dispatcher)
    if job then return job end
  end
  return nil
end

-- A FAILED or CANCELLED job back to WAITING now (see Backend.retry): counts from 0, cancel
-- request, result and finished_at cleared; error and history kept. The token the last lease
-- left (field k) goes too: a late repeat of that attempt's fail or release must not take
-- this new life of the job for its own. Returns 'ok', 'state'
-- (it is in another state) or 'unique' and the id of the live job that holds its key.
local function retry_job(id)
  local f = fields(id, 's', 'u')
  local state = f and f[1]
  if state ~= 'f' and state ~= 'x' then return 'state' end
  local unique = f[2]
  if unique then
    local holder = redis.call('HGET', K_UNIQUE, unique)
    if holder and holder ~= id then
      local held_state = field(holder, 's')
      if held_state == 'w' or held_state == 'd' or held_state == 'a' then
        return 'unique', holder
      end
    end
    redis.call('HSET', K_UNIQUE, unique, id)
  end
  redis.call('ZREM', finished_key(state), id)
  redis.call('HDEL', job_key(id), 'm', 'x', 'C', 'R', 'e', 'k')
  requeue(id, NOWS)
  return 'ok'
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
