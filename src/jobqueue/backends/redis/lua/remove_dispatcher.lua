#!lua flags=allow-oom
-- Forget a dispatcher at once (its clean exit). ARGV[9] dispatcher id. Returns 1 if it had a
-- record, else 0.
local had = redis.call('DEL', dispatcher_key(ARGV[9]))
return (redis.call('ZREM', K_DISPATCHERS, ARGV[9]) + had) > 0 and 1 or 0
