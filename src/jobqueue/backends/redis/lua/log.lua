#!lua flags=allow-oom
-- Append a log line, keeping the newest ARGV[12]. ARGV[9] id, [10] token, [11] entry JSON.
-- Returns 1, or 0 if the lease was lost.
local id = ARGV[9]
if not held(id, ARGV[10]) then return 0 end
if redis.call('RPUSH', log_key(id), ARGV[11]) == 1 then redis.call('HSET', job_key(id), 'L', '1') end
redis.call('LTRIM', log_key(id), -tonumber(ARGV[12]), -1)
return 1
