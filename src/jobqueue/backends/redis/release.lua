-- Give an active job back without counting the attempt (dispatcher shutdown).
-- ARGV[8] id, [9] token. Returns 1, or 0 if the token no longer holds the job.
local id = ARGV[8]
if not holds(id, ARGV[9]) then return 0 end
drop_lease(id)
local made = tonumber(field(id, 'm')) or 0
redis.call('HSET', job_key(id), 'm', math.max(made - 1, 0))
requeue(id, NOWS)
return 1
