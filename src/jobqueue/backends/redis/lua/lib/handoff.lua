-- Idle waiters: dispatchers blocked on an inbox, handed a claimed job (or woken) when work
-- becomes ready, so they start it without a claim of their own.

-- How long past the end of its announced wait an idle waiter's registration is honoured:
-- a waiter that died while blocked costs at most one job a lease (recovered) within it.
local WAITER_GRACE = 1

-- An idle waiter blocks on its inbox for at most `wait` seconds. Its record (JSON) holds
-- when it stops being honoured (e), its lease ('+seconds'; '' = never hand it a job) (l),
-- its dispatcher id (d), its name group (g) and the names it only wants to be woken for
-- (c: capped by max_active, so a job handed over could exceed the cap). One entry in its
-- group's list, whatever the number of names it serves.
local function register_waiter(token, lease, dispatcher, wait, group, capped)
  redis.call('LPUSH', group_waiters_key(group), token)
  if group ~= '' then redis.call('ZADD', K_GROUPS, NOW, group) end
  local expires = string.format('%.17g', NOW + wait + WAITER_GRACE)
  local record = {e = expires, l = lease, d = dispatcher, g = group, c = capped}
  redis.call('HSET', K_WAITERS, token, cjson.encode(record))
end

-- A waiter's record, or nil (none, or not ours).
local function waiter_record(token)
  local text = redis.call('HGET', K_WAITERS, token)
  local ok, record = pcall(cjson.decode, text or '')
  if ok and type(record) == 'table' then return record end
  return nil
end

-- Forget a waiter's registration: its entry in its group's list (unless already popped)
-- and its record.
local function withdraw_waiter(token, record, popped)
  if not popped and type(record.g) == 'string' then
    redis.call('LREM', group_waiters_key(record.g), 0, token)
  end
  redis.call('HDEL', K_WAITERS, token)
end

-- How long a name group is kept with no store (group.lua) and no waiter registering on it.
local GROUP_IDLE = 86400

-- Forget a name group: its set, its place in each name's groups, its waiter list (waiters
-- still blocked time out and find it missing when they register again).
local function drop_group(digest)
  local k = group_key(digest)
  for _, name in ipairs(redis.call('SMEMBERS', k)) do
    redis.call('SREM', name_groups_key(name), digest)
  end
  redis.call('DEL', k, group_waiters_key(digest))
  redis.call('ZREM', K_GROUPS, digest)
end

-- Push a message to a waiter's inbox: a handed job (its snapshot as JSON) or 'w' (woken: it
-- claims for itself). The inbox expires, so one a dead waiter never read goes.
local function deliver(token, message)
  local k = inbox_key(token)
  redis.call('LPUSH', k, message)
  redis.call('EXPIRE', k, 60)
end

-- Jobs of `name` became ready: up to `left` of them go to the longest-idle waiters of one
-- group serving it, each handed the next job (see signal). Returns how many are left to
-- hand, 0 when the name has nothing more to hand.
local function signal_group(name, group, left)
  local k = group_waiters_key(group)
  for _ = 1, 64 do
    if left <= 0 then return 0 end
    local token = redis.call('RPOP', k)
    if not token then return left end
    if is_paused(name) then -- read only once a waiter is there: a busy queue never pays
      redis.call('RPUSH', k, token)
      return 0
    end
    local record = waiter_record(token)
    if record then
      clock_now()
      local wake = record.l == '' or (type(record.c) == 'table' and record.c[name])
      if (tonumber(record.e) or 0) <= NOW then
        withdraw_waiter(token, record, true)
      elseif wake then
        withdraw_waiter(token, record, true)
        deliver(token, 'w')
        left = left - 1
      else
        local job
        for _ = 1, 100 do
          local id = pop_head(name)
          if not id then break end
          job = claim_job(id, name, token, at(record.l), record.d)
          if job then break end
        end
        if not job then -- nothing left to hand over: it goes on waiting
          redis.call('RPUSH', k, token)
          return 0
        end
        withdraw_waiter(token, record, true)
        deliver(token, cjson.encode(job))
        left = left - 1
      end
    end
  end
  return left
end

-- Jobs of `name` became ready: for each (up to `n`, at most 64), the longest-idle waiter of
-- a group serving the name gets the next one handed to it -- claimed under the waiter's
-- token and lease and pushed to its inbox, so it starts the job without a claim of its
-- own -- or, where it asked only to be woken (a plain wait, or a name capped by
-- max_active), a wake-up. Nobody waiting costs one SMEMBERS and an RPOP per group of the
-- name. A paused name hands nothing and wakes nobody (resume signals it). A registration
-- whose waiter must have died (past its wait and grace) is dropped on the way. It reads
-- the clock only through clock_now, before anything that uses NOW (scripts.py counts it as
-- reading the clock lazily).
local function signal(name, n)
  local left = math.min(n or 1, 64)
  for _, group in ipairs(redis.call('SMEMBERS', name_groups_key(name))) do
    left = signal_group(name, group, left)
    if left <= 0 then return end
  end
end
