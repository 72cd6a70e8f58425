#!lua flags=allow-oom
-- Recover expired leases (at most one batch). Returns how many were recovered or failed.
return recover()
