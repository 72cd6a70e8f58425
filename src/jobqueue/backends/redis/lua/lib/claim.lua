-- Claiming: housekeeping first, a lost reply's claim answered again, then the next job.

-- On a repeat: which active job a lease token holds, so a claim whose reply was lost hands
-- out the job its first run took instead of leaving that one to stall. The map is built once
-- per call, O(active jobs), and only for repeats.
local function claimed_before(token)
  if not REPEAT then return nil end
  if not claimed_by then
    claimed_by = {}
    for _, id in ipairs(redis.call('ZRANGE', K_ACTIVE, 0, -1)) do
      local k = field(id, 'k')
      if k then claimed_by[k] = id end
    end
  end
  return claimed_by[token]
end

-- Claim the next job (see take_next), one of `want` the call may claim (1 when nil).
-- ARGV[base] is the claiming dispatcher's id ('' = none), the spec follows (claim_spec).
-- `lease` is a time argument (see `at`). Returns {id, fields, logs, deadline} or nil.
local function claim(token, lease, base, want)
  local before = claimed_before(token)
  if before then return snapshot(before) end
  local deadline = at(lease)
  local dispatcher = ARGV[base]
  for _ = 1, 100 do
    local name, id = take_next(base + 1, want)
    if not id then return nil end
    local job = claim_job(id, name, token, deadline, dispatcher)
    if job then return job end
  end
  put_back_run()
  return nil
end
