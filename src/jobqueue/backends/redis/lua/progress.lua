#!lua flags=allow-oom
-- Store a running job's progress. ARGV[9] id, [10] token, [11] progress, [12] message
-- ('' = none, else '=' .. message). Returns 1, or 0 if the lease was lost.
local id = ARGV[9]
if not held(id, ARGV[10]) then return 0 end
if ARGV[12] == '' then
  redis.call('HSET', job_key(id), 'g', ARGV[11])
  redis.call('HDEL', job_key(id), 'G')
else
  redis.call('HSET', job_key(id), 'g', ARGV[11], 'G', string.sub(ARGV[12], 2))
end
return 1
