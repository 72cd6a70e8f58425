-- Idle waiters: dispatchers blocked on an inbox, handed a claimed job (or woken) when work
-- becomes ready, so they start it without a claim of their own.

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
