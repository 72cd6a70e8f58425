-- Read one job. ARGV[8] id. Returns {id, fields, logs}, {id, 'corrupt'} or nil.
if redis.call('EXISTS', job_key(ARGV[8])) == 0 then return nil end
return snapshot(ARGV[8])
