#!lua flags=allow-oom
-- Active jobs whose lease expired on NOW, soonest expired first (Backend.expired); a read.
-- ARGV[9] limit. Returns per job {lease token ('' = none), {id, fields, logs, deadline}}; an
-- entry with no job hash under it is left out (housekeep.lua drops it).
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', NOWS, 'LIMIT', 0, tonumber(ARGV[9]))) do
  if is_job(id) then out[#out + 1] = {field(id, 'k') or '', snapshot(id)} end
end
return out
