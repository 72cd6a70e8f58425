#!lua flags=allow-oom
-- Give an active job back without counting the attempt (dispatcher shutdown).
-- A cancel-requested job ends CANCELLED instead. ARGV[9] id, [10] token. Returns 1, or 0 if
-- the token no longer holds the job (a repeat whose first run was stored returns 1).
local id = ARGV[9]
local job = held(id, ARGV[10])
if not job then return repeated(id, ARGV[10], 'wx', 'r') and 1 or 0 end
drop_lease(id, job[2])
mark_outcome(id, 'r')
record_attempt(id, 'released', nil)
local made = tonumber(field(id, 'm')) or 0
if job[5] == '1' then
  redis.call('HSET', job_key(id), 'm', math.max(made - 1, 0))
  finish(id, 'x', job)
  count_outcome('x') -- the job ended, asked to stop; a plain release counts nothing
  return 1
end
requeue(id, NOWS, 'm', math.max(made - 1, 0))
return 1
