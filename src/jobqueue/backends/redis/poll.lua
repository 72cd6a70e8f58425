#!lua flags=allow-oom
-- Before an idle dispatcher blocks: housekeeping, then {1} if a job is ready for one of the
-- names (ARGV[9] count, [10..] names) that is not paused, else clear their stale wake-ups
-- (a paused name's jobs wake nobody until resume pushes one) and return {0, seconds until
-- the next due time} (earliest delayed run_at or lease deadline, '' if none) to bound the
-- wait -- relative, as the caller's clock may differ from NOW's.
maintain()
local count = tonumber(ARGV[9])
for i = 10, 9 + count do
  if not is_paused(ARGV[i]) and head_of(ARGV[i]) then return {1} end
end
for i = 10, 9 + count do redis.call('DEL', signal_key(ARGV[i])) end
local due
for _, k in ipairs({K_DELAYED, K_ACTIVE}) do
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')[2]
  if first and (not due or tonumber(first) < tonumber(due)) then due = first end
end
if not due then return {0, ''} end
return {0, string.format('%.17g', tonumber(due) - NOW)}
