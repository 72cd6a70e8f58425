-- the call and token that ended each job's last lease
--
-- Version 4: which call ended a job's last lease, and with which token (``"<call> <token>"``,
-- the call one of complete, fail, release, finish_cancelled), so that repeating that call with
-- that token reports its outcome instead of failing (outcomes are idempotent per lease token).
-- ``lease_token`` cannot keep it: it is cleared as the lease ends, and a kept token would not
-- say which call ended the lease. A claim or a retry clears it; NULL on existing rows is
-- right (their repeats were refused before, and stay refused).
ALTER TABLE jobqueue_jobs ADD COLUMN ended_lease TEXT;
