#!lua flags=allow-oom
-- The holder stopped a cancel-requested job's handler: CANCELLED, the attempt recorded as
-- cancelled. ARGV[9] id, [10] token, [11] error JSON ('' = none). Returns 1, or 0 if the
-- token no longer holds the job (a repeat whose first run was stored returns 1, as complete
-- does: the token stays in the finished job).
local id, err = ARGV[9], ARGV[11]
local job = held(id, ARGV[10])
if not job then return repeated(id, ARGV[10], 'x', 'x') and 1 or 0 end
drop_lease(id, job[2])
mark_outcome(id, 'x')
if err == '' then
  record_attempt(id, 'cancelled', nil)
  finish(id, 'x', job)
else
  record_attempt(id, 'cancelled', err)
  finish(id, 'x', job, 'E', err)
end
count_outcome('x')
return 1
