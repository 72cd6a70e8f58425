#!lua flags=allow-oom
-- Recover expired leases (at most one batch). Returns {how many were recovered or failed,
-- 1 if a batch was full (call again) else 0, the recovered jobs not reported yet (see
-- take_recovered)}.
local n = recover()
local recovered, more = take_recovered()
return {n, (n >= BATCH or more) and 1 or 0, recovered}
