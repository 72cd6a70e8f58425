#!lua flags=allow-oom
-- Stop claims of one worker name until resume: it leaves the heads (claims never look at
-- it). ARGV[9] name.
redis.call('SADD', K_PAUSED, ARGV[9])
list_heads(ARGV[9], false)
return 1
