#!lua flags=allow-oom
-- Extend a lease. ARGV[9] id, [10] token, [11] lease ('+seconds' from now). Returns 1, or 0
-- if lost.
if not held(ARGV[9], ARGV[10]) then return 0 end
redis.call('ZADD', K_ACTIVE, 'XX', at(ARGV[11]), ARGV[9])
return 1
