-- The holder stopped a cancel-requested job's handler: CANCELLED, the attempt recorded as
-- cancelled. ARGV[8] id, [9] token, [10] error JSON ('' = none). Returns 1, or 0 if the
-- token no longer holds the job.
local id, err = ARGV[8], ARGV[10]
local job = held(id, ARGV[9])
if not job then return 0 end
drop_lease(id, job[2])
if err == '' then
  record_attempt(id, 'cancelled', nil)
  finish(id, 'x', job)
else
  record_attempt(id, 'cancelled', err)
  finish(id, 'x', job, 'E', err)
end
return 1
