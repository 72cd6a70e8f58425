#!lua flags=allow-oom
-- The live dispatchers (a read: an expired record is left out here and deleted by housekeep).
-- Returns a flat list: id, record JSON, last seen, for each.
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_DISPATCHERS, '(' .. NOWS, '+inf')) do
  local f = redis.pcall('HMGET', dispatcher_key(id), 'i', 'l')
  if not foreign(f) and f[1] and f[2] then
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
  end
end
return out
