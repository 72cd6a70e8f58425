#!lua flags=allow-oom
-- Claim the next ready job (after promoting due delayed jobs, recovering expired leases and
-- applying retention). ARGV[9] token, [10] lease ('+seconds'), [11..] dispatcher id ('' =
-- none), name count, name/cap pairs. Returns {id, fields, logs} or nil.
return claim(ARGV[9], ARGV[10], 11)
