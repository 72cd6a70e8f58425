#!lua flags=allow-oom
-- Start waiting for a job to finish. ARGV[9] id, [10] '1' to register as a waiter, '-1' to
-- unregister. Returns {'gone'}, {'done', {id, fields, logs}} or {'wait'}.
local id = ARGV[9]
if not is_job(id) then return {'gone'} end
local state = field(id, 's')
if state == 'c' or state == 'f' or state == 'x' then return {'done', snapshot(id)} end
local waiting = incr_field(id, 'w', tonumber(ARGV[10]))
if waiting <= 0 then redis.call('HDEL', job_key(id), 'w') end
return {'wait'}
