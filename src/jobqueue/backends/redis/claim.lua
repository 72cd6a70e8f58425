-- Claim the next ready job (after promoting due delayed jobs, recovering expired leases and
-- applying retention). ARGV[8] token, [9] lease deadline, [10..] dispatcher id ('' = none),
-- name count, name/cap pairs. Returns {id, fields, logs} or nil.
return claim(ARGV[8], ARGV[9], 10)
