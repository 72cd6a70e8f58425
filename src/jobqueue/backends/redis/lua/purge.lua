#!lua flags=allow-oom
-- Delete finished jobs of one state, at most one batch per call. ARGV[9] state letter,
-- [10] name ('' = any, else '=' .. name), [11] finished before, a time argument (see `at`;
-- '+' and a negative offset for a time before NOW; '' = any age), [12] offset (entries
-- earlier calls kept). Returns {deleted, kept, scanned}; fewer than BATCH scanned means the
-- set is done. A repeat scans the same window again: the jobs the first run deleted are
-- gone, so it goes on with the next ones (the first run's count is the only thing lost).
local k = finished_key(ARGV[9])
local name = ARGV[10] ~= '' and string.sub(ARGV[10], 2) or nil
local before = ARGV[11] ~= '' and tonumber(at(ARGV[11])) or nil
local offset = tonumber(ARGV[12])
local ids = redis.call('ZRANGE', k, offset, offset + BATCH - 1)
local deleted, kept = 0, 0
for _, id in ipairs(ids) do
  local f = fields(id, 'n', 'e') or {}
  if (name and f[1] ~= name) or (before and (tonumber(f[2]) or 0) >= before) then
    kept = kept + 1
  else
    drop_job(id)
    deleted = deleted + 1
  end
end
return {deleted, kept, #ids}
