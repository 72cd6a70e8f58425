#!lua flags=allow-oom
-- Let claims of one worker name go on: back among the heads, and its waiting jobs handed to
-- its idle dispatchers, as no submit signalled them while it was paused. ARGV[9] name.
redis.call('SREM', K_PAUSED, ARGV[9])
list_heads(ARGV[9], true)
signal(ARGV[9], 64)
return 1
