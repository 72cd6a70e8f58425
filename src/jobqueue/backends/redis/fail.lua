-- Record a failed attempt. ARGV[8] id, [9] token, [10] error JSON, [11] retry_at ('' = fail
-- for good; a cancel-requested job ends CANCELLED either way). Returns the new state letter,
-- or 'lost' if the token no longer holds the job.
local id, retry_at = ARGV[8], ARGV[11]
local job = held(id, ARGV[9])
if not job then return 'lost' end
drop_lease(id, job[2])
return fail_held(id, job, ARGV[10], retry_at)
