#!lua flags=allow-oom
-- How many jobs are in each state: {waiting, delayed, active, completed, failed, cancelled}.
-- A read: no housekeeping (a due job counts as delayed until a claim or maintain moves it).
local waiting = 0
for _, name in ipairs(redis.call('SMEMBERS', K_NAMES)) do
  waiting = waiting + waiting_count(name)
end
return {waiting, redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_ACTIVE),
  redis.call('ZCARD', finished_key('c')), redis.call('ZCARD', finished_key('f')),
  redis.call('ZCARD', finished_key('x'))}
