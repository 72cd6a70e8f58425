#!lua flags=allow-oom
-- Pause (ARGV[10] '1') or resume (ARGV[10] '') the schedule ARGV[9], making its record when
-- it has none (a schedule may be paused before its first tick); updated_at moves only when
-- something changed, so a resend changes nothing more.
local name, paused = ARGV[9], ARGV[10] == '1'
local K = schedule_key(name)
local made = redis.call('EXISTS', K) == 0
if not made and (redis.call('HGET', K, 'p') == '1') == paused then return 0 end
if made then redis.call('HSET', K, 'd', '') end
if paused then
  redis.call('HSET', K, 'p', '1', 'u', NOWS)
else
  redis.call('HSET', K, 'u', NOWS)
  redis.call('HDEL', K, 'p')
end
redis.call('SADD', K_SCHEDULES, name)
return 1
