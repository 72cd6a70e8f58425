-- Housekeeping, then how many jobs are in each state: {waiting, delayed, active, completed, failed}.
maintain()
local waiting = 0
for _, name in ipairs(redis.call('SMEMBERS', K_NAMES)) do
  local n = redis.pcall('ZCARD', ready_key(name))
  if type(n) == 'number' then waiting = waiting + n end
end
return {waiting, redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_ACTIVE),
  redis.call('ZCARD', finished_key('c')), redis.call('ZCARD', finished_key('f'))}
