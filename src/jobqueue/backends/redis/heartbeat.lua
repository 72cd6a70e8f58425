-- Renew every lease a dispatcher holds and record it as alive, in one step. Writes only a
-- few small values, so it needs no memory to speak of (it must work when Redis is full).
-- ARGV[8] dispatcher id, [9] its record JSON, [10] new deadline (also the record's expiry),
-- [11] lease count, then id/token pairs. Returns per lease 'held', 'cancel' or 'lost'.
local deadline = ARGV[10]
local out = {}
for n = 1, tonumber(ARGV[11]) do
  local id = ARGV[10 + 2 * n]
  local job = held(id, ARGV[11 + 2 * n])
  if not job then
    out[n] = 'lost'
  else
    redis.call('ZADD', K_ACTIVE, 'XX', deadline, id)
    out[n] = job[5] == '1' and 'cancel' or 'held'
  end
end
redis.call('HSET', dispatcher_key(ARGV[8]), 'i', ARGV[9], 'l', NOWS)
redis.call('ZADD', K_DISPATCHERS, deadline, ARGV[8])
return out
