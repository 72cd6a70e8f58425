#!lua flags=allow-oom
-- Record a failed attempt. ARGV[9] id, [10] token, [11] error JSON, [12] retry_at, a time
-- argument ('' = fail for good; a cancel-requested job ends CANCELLED either way). Returns
-- the new state letter, or 'lost' if the token no longer holds the job (a repeat whose
-- first run was stored returns that run's state).
local id, retry_at = ARGV[9], ARGV[12]
local job = held(id, ARGV[10])
if not job then return repeated(id, ARGV[10], 'fwdx', 'f') or 'lost' end
drop_lease(id, job[2])
mark_outcome(id, 'f')
return fail_held(id, job, ARGV[11], retry_at)
