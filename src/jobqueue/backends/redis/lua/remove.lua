#!lua flags=allow-oom
-- Delete a job whatever its state. ARGV[9] id. Returns 1, or 0 if there was none.
local id = ARGV[9]
if redis.call('EXISTS', job_key(id)) == 0 then return 0 end
drop_job(id)
return 1
