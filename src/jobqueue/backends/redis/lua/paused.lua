#!lua flags=allow-oom
-- The paused worker names (a read).
return redis.call('SMEMBERS', K_PAUSED)
