#!lua flags=allow-oom
-- Move time forward (Backend.housekeep), each at most one batch: promote due jobs, apply
-- retention, forget dispatchers whose record expired, and drop expired lease entries with
-- no job hash under them (expired.lua leaves them out), drop name groups unused for a day.
-- No stall recovery: the core's.
-- Returns {jobs moved or removed, 1 if a batch was full (call again) else 0}.
local moved = tidy()
local gone = redis.call('ZRANGEBYSCORE', K_DISPATCHERS, '-inf', NOWS, 'LIMIT', 0, BATCH)
for _, id in ipairs(gone) do
  redis.call('DEL', dispatcher_key(id))
  redis.call('ZREM', K_DISPATCHERS, id)
end
local expired = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', NOWS, 'LIMIT', 0, BATCH)
for _, id in ipairs(expired) do
  if not is_job(id) then redis.call('ZREM', K_ACTIVE, id) end
end
-- A group nobody stored or waited on for GROUP_IDLE seconds goes, ten per call: a
-- dispatcher still claiming with it is told it is missing and stores it again.
for _, digest in ipairs(redis.call('ZRANGEBYSCORE', K_GROUPS, '-inf', NOW - GROUP_IDLE, 'LIMIT', 0, 10)) do
  drop_group(digest)
end
return {moved, (moved >= BATCH or #gone >= BATCH) and 1 or 0}
