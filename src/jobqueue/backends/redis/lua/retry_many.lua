#!lua flags=allow-oom
-- Retry the jobs of one finished set in finishing order, at most one batch per call.
-- ARGV[9] state letter ('f' or 'x'), [10] name ('' = any, else '=' .. name), [11] offset
-- (how many entries earlier calls skipped: they stay in the set, ahead of the rest).
-- Returns {retried, skipped, scanned}; fewer than BATCH scanned means the set is done.
-- A repeat scans the same window again: what the first run retried left the set, so it
-- goes on with the next jobs (the first run's count is the only thing lost).
local k = finished_key(ARGV[9])
local name = ARGV[10] ~= '' and string.sub(ARGV[10], 2) or nil
local offset = tonumber(ARGV[11])
local ids = redis.call('ZRANGE', k, offset, offset + BATCH - 1)
local retried, skipped = 0, 0
for _, id in ipairs(ids) do
  -- A job of another name, or whose unique key another live job holds, stays where it is.
  if (name and field(id, 'n') ~= name) or retry_job(id) ~= 'ok' then
    skipped = skipped + 1
  else
    retried = retried + 1
  end
end
return {retried, skipped, #ids}
