#!lua flags=allow-oom
-- Write changes the core decided, each under its guard, in order, then claim (Backend.apply):
-- one step. The claim first: ARGV[9] claim limit, [10] '1' to claim
-- nothing when a change was not written, that many tokens, lease ('+seconds'), dispatcher
-- id, the spec (claim_spec: group digest, capped-name count, name/cap pairs; '', 0 for no
-- claim). Then the change count and per
-- change: id, guard kind ('h' held, 'e' expired, 's' in state), token or state letters,
-- cancel flag the change was decided for ('' any, '1', '0'), to (state letter), run_at
-- delay in seconds from NOW ('' = run_at stays), ended outcome (an AttemptOutcome value,
-- '' = no attempt ended), its error JSON (''), '0' when the attempt is not counted, the
-- ended lease's call letter ('' none), '1' to fence, outcome counted (letter, ''), how many
-- fields to set, then field/value pairs (encoded; '' deletes the field), the last three a
-- flow's delivery when the first of them is '@' (lua/lib/flows.lua).
-- Returns {results, claims, resent, missing}: per change 0 (written) or its conflict
-- (check_guard), per claim {id, fields, logs, deadline}, 1 when this call is a resend after a
-- lost reply (ARGV[8]), and 1 when the claim's name group is not stored (group.lua: the
-- caller stores it and claims again). A resend finds its changes written -- its conflicts show them done (the token's
-- call in `ended_by`, or the state they moved to), which changeset.py reports as written --
-- and gets the claims its first run made (claimed_before; claiming nothing new when its
-- claims depended on every change being written, as that run may have claimed nothing).
local limit, unless_conflict = tonumber(ARGV[9]), ARGV[10] == '1'
local lease = ARGV[11 + limit]
local claim_base = 12 + limit
local i = claim_base + 3 + 2 * tonumber(ARGV[claim_base + 2])
local count = tonumber(ARGV[i])
i = i + 1
-- A sequence number per change and per claim, taken at once (unused ones leave a gap).
reserve_seqs(count + limit)
local results, conflicted = {}, false
for n = 1, count do
  local id = ARGV[i]
  local f = fields(id, unpack(LOOK))
  local conflict = check_guard(id, f, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
  local delivery = delivery_at(i)
  if delivery and not conflict then conflict = check_delivery(f, delivery) end
  if conflict then
    results[n], conflicted = conflict, true
  else
    local refused = write_change(id, f, i, delivery)
    if refused then return refused end
    results[n] = 0
  end
  i = i + 13 + 2 * tonumber(ARGV[i + 12])
end
local claims = {}
if unless_conflict and conflicted and not REPEAT then limit = 0 end
-- The seam's claims promote due jobs first, and only that: retention is housekeep's, stall
-- recovery the core's.
if limit > 0 then promote() end
for n = 1, limit do
  local token, claimed = ARGV[10 + n], nil
  if REPEAT and unless_conflict then
    local before = claimed_before(token)
    claimed = before and snapshot(before)
  else
    claimed = claim(token, lease, claim_base, limit - n + 1)
  end
  if not claimed then break end
  claims[n] = claimed
end
put_back_run() -- ids popped ahead are all claimed by now; never lose one that was not
local missing = limit > 0 and #claims < limit and claim_spec(claim_base + 1).missing
return {results, claims, REPEAT and 1 or 0, missing and 1 or 0}
