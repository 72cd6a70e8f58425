-- Forget a dispatcher at once (its clean exit). ARGV[8] dispatcher id.
redis.call('DEL', dispatcher_key(ARGV[8]))
redis.call('ZREM', K_DISPATCHERS, ARGV[8])
return 1
