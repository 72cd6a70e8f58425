-- Stop claims of one worker name until resume. ARGV[8] name.
redis.call('SADD', K_PAUSED, ARGV[8])
return 1
