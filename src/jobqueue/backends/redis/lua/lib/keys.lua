-- The namespace's keys (docs/redis-layout.md lists them) and the job hash's fields.
--
-- Job hash fields (short names keep a queued job small):
--   n name  s state (w d a c f x, b blocked)  d data JSON  o options JSON  p priority  u unique key
--   c created_at  r run_at (absent = created_at)  m attempts_made  x stalls  b started_at
--   e finished_at  g progress  G progress message  R result JSON  E error JSON
--   k lease token (kept once the lease ends by complete/fail/release/finish_cancelled, so a
--     repeated call with that token reports what the first did; a new claim, a recovery or
--     a retry replaces or clears it)
--   K which call ended the lease k names (see mark_outcome); stale once k changes
--   q sequence (waiting/delayed: enqueue order; active: claim order)
--   w waiter count  L '1' once the job has a log list
--   C '1' when a cancel was requested  D dispatcher id (while active; a COMPLETED job keeps
--     it for its implicit last record, see record_completion)  H attempt history JSON
--   F flow id  A dependencies, N dependents (JSON lists of [job id, on_failure])  Y '1'
--     when the job has outcomes of its dependencies (outcomes_key)  Z how many dependencies
--     have no outcome yet: a flow job's only (see flows.lua)
-- The last three, and the flow fields, are absent at their defaults, so a waiting job does
-- not grow.
-- Logs live in a separate list (only jobs that log pay for it); field L marks the jobs that
-- have one, so reading a job that never logged skips the list.

local function job_key(id) return P .. 'j:' .. id end
local function log_key(id) return P .. 'l:' .. id end
-- A flow job's outcomes: dependency id -> its outcome's JSON (see outcomes_json).
local function outcomes_key(id) return P .. 'y:' .. id end
-- Waiting jobs: one list per (name, priority) in enqueue order -- a list entry costs a few
-- bytes where a sorted-set entry costs ~100 -- plus a per-name zset of the priority levels
-- that have waiting jobs.
local function ready_key(name, priority) return P .. 'r:' .. name .. ':' .. priority end
local function levels_key(name) return P .. 'R:' .. name end
-- The heads across names, so a claim costs the same whatever the number of names: per
-- priority level, a zset of the names whose waiting list at that level has a first job
-- (paused names left out), scored by that job's sequence number -- the first entry is the
-- next job of the level in enqueue order -- plus K_LEVELS, a zset of the levels listed.
local function heads_key(priority) return P .. 'H:' .. priority end
-- Name groups: a set of worker names stored once (group.lua) under a digest of it, so a
-- dispatcher serving thousands of names sends the digest, not the names, and waits on one
-- list whatever it serves. Per name, the set of digests of the groups holding it; per
-- group, the list of its idle waiters' tokens (see signal).
local function group_key(digest) return P .. 'G:' .. digest end
local function name_groups_key(name) return P .. 'g:' .. name end
local function group_waiters_key(digest) return P .. 'gw:' .. digest end
-- Idle waiters (see signal): per token, its record in the hash K_WAITERS, its entry in its
-- group's list (group_waiters_key) and its inbox, the list it blocks on.
local function inbox_key(token) return P .. 'h:' .. token end
local function done_key(id) return P .. 'x:' .. id end
local function finished_key(state) return P .. state end
local function dispatcher_key(id) return P .. 'dispatcher:' .. id end
-- Per-name counts: one field per state letter that has jobs of the name, so a dashboard
-- reads O(names) instead of walking every job.
local function name_counts_key(name) return P .. 'n:' .. name end

-- Periodic schedules: one record hash and one list of recent ticks per schedule.
local function schedule_key(name) return P .. 'S:' .. name end
local function schedule_ticks_key(name) return P .. 'T:' .. name end

-- Finished attempts per minute, for throughput charts: hash `P o:MINUTE` (MINUTE =
-- floor(unix seconds / 60) on NOW), field c completed, f failed, r retried, x cancelled.
local function outcome_key(minute) return P .. 'o:' .. string.format('%d', minute) end
