#!lua flags=allow-oom
-- Complete a job and, in the same step, claim the next one (one round trip per job).
-- ARGV[9] id, [10] token, [11] result JSON, [12] '1' to claim next: [13] token, [14] lease
-- ('+seconds'), [15..] dispatcher id, name count, name/cap pairs. Returns {'lost'}, {'ok'}
-- or {'ok', {id, fields, logs}}. A repeat of a completion already stored with this token is
-- 'ok'; a resend after a lost reply (ARGV[8]) also gets the claim its first run made.
local id = ARGV[9]
local job = held(id, ARGV[10])
local claim_next = ARGV[12] == '1'
if job then
  -- A cancel that came while the handler finished is too late: the result is kept.
  complete_held(id, job, ARGV[11], claim_next)
elseif not repeated(id, ARGV[10], 'c', 'c') then
  return {'lost'}
elseif not REPEAT then
  -- A caller's own repeat (not a resend after a lost reply): the first call's claim went to
  -- that call and cannot be told apart from other active jobs, so no claim is made now.
  return {'ok'}
end
if not claim_next then return {'ok'} end
local next_job = claim(ARGV[13], ARGV[14], 15)
if not next_job then return {'ok'} end
return {'ok', next_job}
