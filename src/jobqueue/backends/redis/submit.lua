-- Store new jobs (one or many in one call). ARGV[8] = how many; then per job:
--   name, priority, unique ('' = none, else '=' .. key), run_at, #logs, #field pairs,
--   log entries..., field/value pairs... (every non-default field, already encoded)
-- Returns per job {'n', id} (stored) or {'u', id, fields, logs} (the live job holding
-- its unique key, stored nothing).
local out = {}
local stored = {} -- name -> how many jobs were stored for it (one wake-up each, bounded)
local i = 9
for n = 1, tonumber(ARGV[8]) do
  local name, priority, unique, run_at = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local nlogs, npairs = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local logs_at, pairs_at = i + 6, i + 6 + nlogs
  i = pairs_at + 2 * npairs
  local existing
  if unique ~= '' then
    unique = string.sub(unique, 2)
    existing = redis.call('HGET', K_UNIQUE, unique)
    local state = existing and field(existing, 's')
    if not (state == 'w' or state == 'd' or state == 'a') then existing = nil end
  end
  if existing then
    local snap = snapshot(existing)
    out[n] = {'u', snap[1], snap[2], snap[3]}
  else
    local id = tostring(redis.call('INCR', P .. 'id'))
    local delayed = tonumber(run_at) > NOW
    local hash = {'n', name, 's', delayed and 'd' or 'w', 'q', redis.call('INCR', K_SEQ)}
    for k = pairs_at, pairs_at + 2 * npairs - 1 do hash[#hash + 1] = ARGV[k] end
    if nlogs > 0 then
      hash[#hash + 1] = 'L'
      hash[#hash + 1] = '1'
    end
    redis.call('HSET', job_key(id), unpack(hash))
    if nlogs > 0 then redis.call('RPUSH', log_key(id), unpack(ARGV, logs_at, logs_at + nlogs - 1)) end
    if unique ~= '' then redis.call('HSET', K_UNIQUE, unique, id) end
    if delayed then
      redis.call('ZADD', K_DELAYED, run_at, id)
    else
      make_ready(id, name, priority)
    end
    if not stored[name] then
      redis.call('SADD', K_NAMES, name)
      stored[name] = 0
    end
    stored[name] = stored[name] + 1
    out[n] = {'n', id}
  end
end
for name, count in pairs(stored) do signal(name, count) end
return out
