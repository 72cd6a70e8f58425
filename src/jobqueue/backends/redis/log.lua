-- Append a log line, keeping the newest ARGV[11]. ARGV[8] id, [9] token, [10] entry JSON.
-- Returns 1, or 0 if the lease was lost.
local id = ARGV[8]
if not held(id, ARGV[9]) then return 0 end
if redis.call('RPUSH', log_key(id), ARGV[10]) == 1 then redis.call('HSET', job_key(id), 'L', '1') end
redis.call('LTRIM', log_key(id), -tonumber(ARGV[11]), -1)
return 1
