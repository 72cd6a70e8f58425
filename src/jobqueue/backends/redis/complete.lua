-- Complete a job and, in the same step, claim the next one (one round trip per job).
-- ARGV[8] id, [9] token, [10] result JSON, [11] '1' to claim next: [12] token, [13] deadline,
-- [14..] dispatcher id, name count, name/cap pairs.
-- Returns {'lost'}, {'ok'} or {'ok', {id, fields, logs}}.
local id = ARGV[8]
local job = held(id, ARGV[9])
if not job then return {'lost'} end
local claim_next = ARGV[11] == '1'
drop_lease(id, job[2], claim_next)
-- A cancel that came while the handler finished is too late: the result is kept.
record_attempt(id, 'completed', nil)
finish(id, 'c', job, 'R', ARGV[10], claim_next)
if not claim_next then return {'ok'} end
local next_job = claim(ARGV[12], ARGV[13], 14)
if released_name then count_down(released_name) end
if not next_job then return {'ok'} end
return {'ok', next_job}
