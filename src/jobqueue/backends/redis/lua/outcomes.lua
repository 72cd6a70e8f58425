#!lua flags=allow-oom
-- Finished attempts per minute (a read). ARGV[9] the first minute wanted; minutes older than
-- the policy keeps are left out, whether or not their hash has expired yet. Returns a flat
-- list: minute, then its field/count pairs, for each minute up to NOW's that has counts.
local now_minute = math.floor(NOW / 60)
local first = math.max(tonumber(ARGV[9]), now_minute - OUTCOME_MINUTES + 1)
local out = {}
for minute = first, now_minute do
  local counts = redis.pcall('HGETALL', outcome_key(minute))
  if not foreign(counts) and #counts > 0 then
    out[#out + 1] = minute
    out[#out + 1] = counts
  end
end
return out
