#!lua flags=allow-oom
-- A failed or cancelled job back to waiting (see retry_job). ARGV[9] id. Returns {'gone'},
-- {'state', letter}, {'unique', holder id} or {'ok', {id, fields, logs}}.
local id = ARGV[9]
if not is_job(id) then return {'gone'} end
local outcome, holder = retry_job(id)
if outcome == 'state' then
  local state = field(id, 's') or ''
  -- A repeat (reply lost) finds the job its first run put back in line -- waiting, or
  -- already claimed again -- and reports that as done rather than as a refusal.
  if REPEAT and (state == 'w' or state == 'a') then return {'ok', snapshot(id)} end
  return {'state', state}
end
if outcome == 'unique' then return {'unique', holder} end
return {'ok', snapshot(id)}
