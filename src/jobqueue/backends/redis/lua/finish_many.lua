#!lua flags=allow-oom
-- Record several outcomes, each fenced by its own token, then claim up to a limit: the
-- dispatcher's prefetch in one round trip (claim_many is this with no outcomes).
-- ARGV[9] outcome count, then per outcome: id, token, kind ('c' complete, 'f' fail),
-- payload (result or error JSON), retry_at (a time argument, '' = none); then claim limit,
-- that many tokens, lease ('+seconds'), dispatcher id, name count, name/cap pairs.
-- Returns {states, claims}: a state letter or 'lost' per outcome, {id, fields, logs} per claim.
local states = {}
local i = 10
-- A sequence number per finish and per claim, taken at once (a short claim leaves a gap).
reserve_seqs(tonumber(ARGV[9]) + tonumber(ARGV[10 + 5 * tonumber(ARGV[9])]))
for n = 1, tonumber(ARGV[9]) do
  local id, token, kind, payload, retry_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local job = held(id, token)
  i = i + 5
  if not job then
    states[n] = repeated(id, token, kind == 'c' and 'c' or 'fwdx', kind == 'c' and 'c' or 'f')
      or 'lost'
  else
    if kind == 'c' then
      complete_held(id, job, payload)
      states[n] = 'c'
    else
      drop_lease(id, job[2])
      mark_outcome(id, 'f')
      states[n] = fail_held(id, job, payload, retry_at)
    end
  end
end
local limit = tonumber(ARGV[i])
local tokens_at, lease = i + 1, ARGV[i + 1 + limit]
local claims = {}
for n = 1, limit do
  local claimed = claim(ARGV[tokens_at + n - 1], lease, i + 2 + limit)
  if not claimed then break end
  claims[n] = claimed
end
return {states, claims}
