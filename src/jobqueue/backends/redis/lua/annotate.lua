#!lua flags=allow-oom
-- For the holder of an unexpired lease: its progress and/or a log line (Backend.annotate).
-- ARGV[9] id, [10] token, [11] progress ('' = none), [12] its message ('' = none, else '='
-- .. message), [13] log entry JSON ('' = none), [14] log lines kept. Returns 1, or 0 if the
-- lease was lost. A resend after a lost reply (ARGV[8]) adds no second line: it finds its
-- entry last in the list (the entry carries the client's time, so two lines rarely match).
local id = ARGV[9]
if not held(id, ARGV[10]) then return 0 end
local j = job_key(id)
if ARGV[11] ~= '' then
  if ARGV[12] == '' then
    redis.call('HSET', j, 'g', ARGV[11])
    redis.call('HDEL', j, 'G')
  else
    redis.call('HSET', j, 'g', ARGV[11], 'G', string.sub(ARGV[12], 2))
  end
end
local entry = ARGV[13]
if entry ~= '' and not (REPEAT and redis.call('LINDEX', log_key(id), -1) == entry) then
  if redis.call('RPUSH', log_key(id), entry) == 1 then redis.call('HSET', j, 'L', '1') end
  redis.call('LTRIM', log_key(id), -tonumber(ARGV[14]), -1)
end
return 1
