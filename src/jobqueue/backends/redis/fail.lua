-- Record a failed attempt. ARGV[8] id, [9] token, [10] error JSON, [11] retry_at ('' = fail
-- for good). Returns the new state letter, or 'lost' if the token no longer holds the job.
local id, token, retry_at = ARGV[8], ARGV[9], ARGV[11]
if not holds(id, token) then return 'lost' end
drop_lease(id)
redis.call('HSET', job_key(id), 'E', ARGV[10])
if retry_at == '' then
  finish(id, 'f')
else
  requeue(id, retry_at)
end
return redis.call('HGET', job_key(id), 's')
