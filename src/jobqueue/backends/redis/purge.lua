-- Delete finished jobs of one state, at most one batch per call. ARGV[8] state letter,
-- [9] name ('' = any, else '=' .. name), [10] finished before ('' = any age), [11] offset
-- (entries earlier calls kept). Returns {deleted, kept, scanned}; fewer than BATCH scanned
-- means the set is done.
local k = finished_key(ARGV[8])
local name = ARGV[9] ~= '' and string.sub(ARGV[9], 2) or nil
local before = tonumber(ARGV[10])
local offset = tonumber(ARGV[11])
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
