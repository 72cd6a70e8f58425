-- What finishing or deleting a job leaves to do: its finish-waiters woken, its unique key
-- freed; a job deleted with every trace of it.

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

-- Delete a job and every trace of it, whatever its state (also tolerates foreign data).
local function drop_job(id)
  local f = fields(id, 'n', 's', 'p', 'u', 'w') or {}
  local name, state = f[1], f[2]
  local finished = state == 'c' or state == 'f' or state == 'x'
  if name and not (state == 'd' or state == 'a' or state == 'b' or finished) then
    unready(id, name, f[3])
  end
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZREM', K_BLOCKED, id)
  drop_lease(id, name)
  redis.call('ZREM', finished_key('c'), id)
  redis.call('ZREM', finished_key('f'), id)
  redis.call('ZREM', finished_key('x'), id)
  forget_unique(id, f[4])
  notify_waiters(id, f[5])
  tally(name, state, -1)
  return redis.call('DEL', job_key(id), log_key(id), outcomes_key(id))
end
