#!lua flags=allow-oom
-- Renew every lease a dispatcher holds and record it as alive, in one step. Writes only a
-- few small values, so it needs no memory to speak of (it must work when Redis is full).
-- ARGV[9] dispatcher id, [10] its record JSON, [11] lease ('+seconds': the new deadline,
-- also the record's expiry), [12] lease count, then id/token pairs. A dispatcher id ''
-- renews the leases only (no record). Returns per lease
-- 'held', 'cancel' or 'lost'. A repeat sets the same deadlines again from a later NOW, as a
-- renew does, so it needs no care.
local deadline = at(ARGV[11])
local out = {}
for n = 1, tonumber(ARGV[12]) do
  local id = ARGV[11 + 2 * n]
  local job = held(id, ARGV[12 + 2 * n])
  if not job then
    out[n] = 'lost'
  else
    redis.call('ZADD', K_ACTIVE, 'XX', deadline, id)
    out[n] = job[5] == '1' and 'cancel' or 'held'
  end
end
if ARGV[9] ~= '' then
  redis.call('HSET', dispatcher_key(ARGV[9]), 'i', ARGV[10], 'l', NOWS)
  redis.call('ZADD', K_DISPATCHERS, deadline, ARGV[9])
end
return out
