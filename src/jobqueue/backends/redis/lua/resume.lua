#!lua flags=allow-oom
-- Let claims of one worker name go on, and hand its waiting jobs to its idle dispatchers: no
-- submit signalled them while it was paused. ARGV[9] name.
redis.call('SREM', K_PAUSED, ARGV[9])
signal(ARGV[9], 64)
return 1
