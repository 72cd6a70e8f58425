#!lua flags=allow-oom
-- Bring a namespace written by an earlier release to this code's layout, ARGV[9] (see
-- groups.py): layout 2 adds the heads across names (heads_key) and name groups, whose idle
-- waiters replace 0.1's per-name waiter lists. Run by every backend before its first claim
-- or wait; a namespace already there costs one GET. Every 0.1 process must have stopped
-- (docs/redis-layout.md): one still claiming would not keep the heads. Returns the layout
-- found ('1' for none).
local found = redis.call('GET', P .. 'layout')
if found == ARGV[9] then return found end
for _, name in ipairs(redis.call('SMEMBERS', K_NAMES)) do
  list_heads(name, true) -- a paused name stays off the heads
  redis.call('DEL', P .. 'w:' .. name)
end
redis.call('DEL', K_WAITERS)
redis.call('SET', P .. 'layout', ARGV[9])
return found or '1'
