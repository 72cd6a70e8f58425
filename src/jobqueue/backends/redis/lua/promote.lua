#!lua flags=allow-oom
-- Run a delayed job now: WAITING with run_at NOW, at the end of its priority's line (as a
-- delayed job coming due is), waking an idle dispatcher of its name as a submit does.
-- ARGV[9] id. Returns {'gone'}, {'state', letter} or {'ok', {id, fields, logs}}.
local id = ARGV[9]
if not is_job(id) then return {'gone'} end
local state = field(id, 's') or ''
if state ~= 'd' then
  -- A repeat (reply lost) finds the job its first run put in line -- waiting, or claimed
  -- already -- and reports that as done rather than as a refusal.
  if REPEAT and (state == 'w' or state == 'a') then return {'ok', snapshot(id)} end
  return {'state', state}
end
redis.call('ZREM', K_DELAYED, id)
requeue(id, NOWS)
return {'ok', snapshot(id)}
