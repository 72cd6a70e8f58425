#!lua flags=allow-oom
-- Maintenance a dispatcher runs on a schedule: promote due jobs, recover expired leases,
-- apply retention (each at most one batch), and forget dispatchers whose record expired.
-- Returns {jobs moved or removed, 1 if a batch was full (call again) else 0, the recovered
-- jobs not reported yet (see take_recovered)}.
local moved = maintain()
local gone = redis.call('ZRANGEBYSCORE', K_DISPATCHERS, '-inf', NOWS, 'LIMIT', 0, BATCH)
for _, id in ipairs(gone) do
  redis.call('DEL', dispatcher_key(id))
  redis.call('ZREM', K_DISPATCHERS, id)
end
local recovered, more = take_recovered()
return {moved, (moved >= BATCH or #gone >= BATCH or more) and 1 or 0, recovered}
