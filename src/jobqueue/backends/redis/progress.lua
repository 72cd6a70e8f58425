-- Store a running job's progress. ARGV[8] id, [9] token, [10] progress, [11] message
-- ('' = none, else '=' .. message). Returns 1, or 0 if the lease was lost.
local id = ARGV[8]
if not held(id, ARGV[9]) then return 0 end
if ARGV[11] == '' then
  redis.call('HSET', job_key(id), 'g', ARGV[10])
  redis.call('HDEL', job_key(id), 'G')
else
  redis.call('HSET', job_key(id), 'g', ARGV[10], 'G', string.sub(ARGV[11], 2))
end
return 1
