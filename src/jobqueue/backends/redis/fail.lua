-- Record a failed attempt. ARGV[8] id, [9] token, [10] error JSON, [11] retry_at ('' = fail
-- for good). Returns the new state letter, or 'lost' if the token no longer holds the job.
local id, retry_at = ARGV[8], ARGV[11]
local job = held(id, ARGV[9])
if not job then return 'lost' end
drop_lease(id, job[2])
if retry_at == '' then
  finish(id, 'f', job, 'E', ARGV[10])
  return 'f'
end
return requeue(id, retry_at, 'E', ARGV[10])
