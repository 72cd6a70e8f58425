#!lua flags=allow-oom
-- Stop claims of one worker name until resume. ARGV[9] name.
redis.call('SADD', K_PAUSED, ARGV[9])
return 1
