#!lua flags=allow-oom
-- Cancel a job. ARGV[9] id. Waiting or delayed: CANCELLED now (unique key freed). Active: the
-- cancel is requested (field C) for its holder to see in its next heartbeat. Returns the
-- state letter after the call ('' when there is no such job). A repeat needs no care: a
-- second run finds the job cancelled (or still requested) and changes nothing.
local id = ARGV[9]
if not is_job(id) then return '' end
local f = fields(id, 's', 'n', 'p', 'k', 'u', 'w')
local state = f and f[1]
if state == 'w' or state == 'd' then
  if state == 'w' then
    unready(id, f[2], f[3])
  else
    redis.call('ZREM', K_DELAYED, id)
  end
  finish(id, 'x', {f[4], f[2], f[5], f[6]})
  return 'x'
elseif state == 'a' then
  redis.call('HSET', job_key(id), 'C', '1')
end
return state or ''
