#!lua flags=allow-oom
-- Give an active job back without counting the attempt (dispatcher shutdown).
-- ARGV[9] id, [10] token. Returns 1, or 0 if the token no longer holds the job (a repeat
-- whose first run was stored returns 1).
local id = ARGV[9]
local job = held(id, ARGV[10])
if not job then return repeated(id, ARGV[10], 'w') and 1 or 0 end
drop_lease(id, job[2])
local made = tonumber(field(id, 'm')) or 0
requeue(id, NOWS, 'm', math.max(made - 1, 0))
return 1
