#!lua flags=allow-oom
-- Read one job. ARGV[9] id. Returns {id, fields, logs}, {id, 'corrupt'} or nil.
if redis.call('EXISTS', job_key(ARGV[9])) == 0 then return nil end
return snapshot(ARGV[9])
