#!lua flags=allow-oom
-- Forget a dispatcher at once (its clean exit). ARGV[9] dispatcher id.
redis.call('DEL', dispatcher_key(ARGV[9]))
redis.call('ZREM', K_DISPATCHERS, ARGV[9])
return 1
