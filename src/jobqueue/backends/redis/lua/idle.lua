#!lua flags=allow-oom
-- Before a dispatcher (or a plain wait_for_work) blocks: due jobs promoted, then one of
--   {'c', job}  a job claimed for it at once (only when it passed a lease),
--   {'r'}       a job is ready that it may not claim (capped by max_active; for a plain
--               wait, any ready job): it should look again rather than block,
--   {'g'}       its name group is not stored (group.lua): store it and call again,
--   {'w', due}  nothing to do: it is now registered as an idle waiter of its group (see
--               signal) and should block on its inbox for at most the wait it announced or
--               `due` seconds ('' = nothing due), the time until the next delayed run_at or
--               lease deadline -- relative, as the caller's clock may differ from NOW's.
-- ARGV[9] token, [10] lease ('+seconds'; '' = a plain wait: claim nothing, only be woken),
-- [11] the longest it will block (seconds), [12] dispatcher id ('' = none), [13..] the
-- spec (claim_spec: group digest, capped-name count, name/cap pairs). A capped name only
-- wakes it: a job handed over could exceed the cap. Its cost does not grow with the names.
local token, lease = ARGV[9], ARGV[10]
-- Due jobs promoted first, and only that (as apply.lua's claims): stall recovery is the
-- core's, which reports each stall.
promote()
local s = claim_spec(13)
if lease ~= '' then
  local job = claim(token, lease, 12)
  if job then return {'c', job} end
  if s.capped then return {'r'} end
elseif any_ready(13) then
  return {'r'}
end
if s.missing then return {'g'} end
local capped = {}
for name in pairs(s.caps) do capped[name] = 1 end
register_waiter(token, lease, ARGV[12], tonumber(ARGV[11]), s.group, capped)
local due
for _, k in ipairs({K_DELAYED, K_ACTIVE}) do
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')[2]
  if first and (not due or tonumber(first) < tonumber(due)) then due = first end
end
if not due then return {'w', ''} end
return {'w', string.format('%.17g', tonumber(due) - NOW)}
