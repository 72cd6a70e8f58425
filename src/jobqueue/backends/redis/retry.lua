-- A failed or cancelled job back to waiting (see retry_job). ARGV[8] id. Returns {'gone'},
-- {'state', letter}, {'unique', holder id} or {'ok', {id, fields, logs}}.
local id = ARGV[8]
if not is_job(id) then return {'gone'} end
local outcome, holder = retry_job(id)
if outcome == 'state' then return {'state', field(id, 's') or ''} end
if outcome == 'unique' then return {'unique', holder} end
return {'ok', snapshot(id)}
