#!lua flags=allow-oom
-- Read schedule records: ARGV[9] '' for every schedule, else '=' .. name for that one.
-- Returns per schedule {name, record fields (flat), recent ticks (newest first)}; a name
-- whose record is gone (or not a hash: foreign data) is left out.
local names
if ARGV[9] == '' then
  names = redis.call('SMEMBERS', K_SCHEDULES)
else
  names = {string.sub(ARGV[9], 2)}
end
local out = {}
for _, name in ipairs(names) do
  local hash = redis.pcall('HGETALL', schedule_key(name))
  if not foreign(hash) and #hash > 0 then
    local ticks = redis.pcall('LRANGE', schedule_ticks_key(name), 0, -1)
    out[#out + 1] = {name, hash, foreign(ticks) and {} or ticks}
  end
end
return out
