#!lua flags=allow-oom
-- Store a name group: the set of worker names a dispatcher serves, under the digest its
-- claims and waits send instead of the names (see claim_spec, register_waiter), and the
-- digest in each name's groups (signal looks there). ARGV[9] digest, [10..] the names.
-- Storing it again is harmless. (A spec of no names sends the digest '', never stored.)
local digest = ARGV[9]
local k = group_key(digest)
for i = 10, #ARGV, 1000 do
  redis.call('SADD', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
for i = 10, #ARGV do redis.call('SADD', name_groups_key(ARGV[i]), digest) end
redis.call('ZADD', K_GROUPS, NOW, digest)
return 1
