-- Extend a lease. ARGV[8] id, [9] token, [10] new deadline. Returns 1, or 0 if lost.
if not held(ARGV[8], ARGV[9]) then return 0 end
redis.call('ZADD', K_ACTIVE, 'XX', ARGV[10], ARGV[8])
return 1
