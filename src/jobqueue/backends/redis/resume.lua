-- Let claims of one worker name go on, and wake its idle dispatchers: no submit signalled
-- them while it was paused. ARGV[8] name.
redis.call('SREM', K_PAUSED, ARGV[8])
signal(ARGV[8], 64)
return 1
