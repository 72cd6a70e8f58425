#!lua flags=allow-oom
-- Housekeeping, then how many jobs are in each state: {waiting, delayed, active, completed, failed}.
maintain()
local waiting = 0
for _, name in ipairs(redis.call('SMEMBERS', K_NAMES)) do
  waiting = waiting + waiting_count(name)
end
return {waiting, redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_ACTIVE),
  redis.call('ZCARD', finished_key('c')), redis.call('ZCARD', finished_key('f'))}
