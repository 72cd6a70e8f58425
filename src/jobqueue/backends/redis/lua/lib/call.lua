-- A call: the ARGV header every script is called with, the values `begin` sets from it at
-- the start of every call, the clock, and time arguments.
--
-- Every script is called with KEYS[1] = the namespace's id counter (so Redis Cluster routes
-- it to the shard owning the namespace's hash tag), KEYS[2] = a key of the namespace that
-- never exists (see cluster.py: while the namespace's slot migrates, Redis refuses the call
-- before the script runs, as it cannot find every declared key on one node) and this ARGV
-- header:
--   1 key prefix "jq:{ns}:"   2 now (a Python float repr: exact, never re-formatted by Lua;
--     '' = the server's TIME)   3 unused ('')   4 completed max age in seconds ('' = forever)
--   5 completed max count (-1)   6 failed max age ('')   7 failed max count (-1)
--   8 '1' when this call repeats one whose reply was lost (the first may have been applied)
-- Script-specific arguments start at ARGV[9]. Scripts that use the policy tail (TAIL below)
-- get it appended after their own arguments. All keys derive from the prefix, so they share
-- the hash tag and live on one shard; Redis allows undeclared keys of the script's own slot.
-- Times the client passes as '+seconds' are relative to NOW (see `at`), so a client whose
-- clock is off still gets the lease length, retry delay or due time it asked for.
--
-- Every script but submit starts with `#!lua flags=allow-oom`: at maxmemory (noeviction) the
-- jobs already stored must still renew, log and finish -- finishing is what frees memory --
-- while submit (plain `#!lua`) is refused whole before it runs, so nothing is half-stored.

-- A call's values: the header's, and names derived from it. They are declared here and set
-- by `begin`, which every call runs first: as a Redis Function library this file is run
-- once, at FUNCTION LOAD, and its definitions serve every call, so nothing a call computes
-- may linger into the next (the per-call caches further down are reset by `begin` too).
local P, NOWS, NOW, REPEAT
local K_SEQ, K_DELAYED, K_ACTIVE, K_UNIQUE, K_NAMES, K_ACTIVE_COUNT, K_PAUSED
-- Blocked jobs of flows (waiting for their dependencies) by sequence number.
local K_BLOCKED
-- Live dispatchers by expiry; each one's record is the hash dispatcher_key(id).
local K_DISPATCHERS
-- Idle waiters' records by token (see register_waiter).
local K_WAITERS
-- The priority levels that have heads (heads_key), and the name groups by last use (a group
-- nobody waited on for GROUP_IDLE seconds is dropped by housekeep).
local K_LEVELS, K_GROUPS
-- Present when every job of the namespace has been counted in the per-name counts (see
-- name_counts_key): submit sets it when it stores the namespace's first job ever. A
-- namespace that held jobs before the counts existed never gets it, and count_by_name
-- counts that one the slow way.
local K_COUNTED
-- Periodic schedules (see claim_tick.lua): the names, one record hash and one list of recent
-- ticks per schedule (schedule_key, schedule_ticks_key).
local K_SCHEDULES
-- The policy tail: values from jobqueue.lifecycle that Calls.command appends after the
-- script's own arguments, only for the scripts that use these names (so renew, log and
-- progress never pay for them): history bound, cancelled max age in seconds ('' = forever,
-- an age like ARGV[4] and [6]) and max count (-1), and how many minutes of outcome counts
-- are kept.
local TAIL, MAX_HISTORY, OUTCOME_MINUTES
-- Per-call caches, described where they are used.
local paused_names, reserved_seq, claimed_by, levels_listed, spec, run
-- Ids and sequence numbers taken ahead for the jobs a submit call stores (reserve_numbers).
local id_block, seq_block
-- Counter changes a call makes, written once, at its end (settle): per name and state, the
-- jobs that entered (+) or left (-) it (tally); per name, the change of its active count;
-- per outcome, the attempts that ended so (count_outcome). A batch of 50 finishes and 50
-- claims then costs a few HINCRBYs, not hundreds.
local count_changes, active_changes, outcome_changes

-- The server's clock: leases taken from many hosts are measured on one clock, so a host whose
-- clock runs ahead cannot see a live lease as expired. (Redis 7 replicates a script's
-- effects, not the script, so reading TIME before writing is allowed.)
local function server_now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- The start of every call: the values above from ARGV (the script's, or in a Redis
-- Function the callback's `args`, bound to the library's ARGV first). `clock` is false for
-- the scripts that never read NOW (scripts.py tells), sparing them the server's TIME; those
-- that read it only sometimes (submit: only for a delayed job) ask `clock_now` instead.
local function begin(clock)
  P = ARGV[1]
  NOWS = clock and (ARGV[2] ~= '' and ARGV[2] or server_now()) or nil
  NOW = clock and tonumber(NOWS) or nil
  REPEAT = ARGV[8] == '1'
  K_SEQ, K_DELAYED, K_ACTIVE, K_UNIQUE = P .. 'q', P .. 'd', P .. 'a', P .. 'u'
  K_NAMES, K_ACTIVE_COUNT, K_PAUSED = P .. 'N', P .. 'ac', P .. 'paused'
  K_DISPATCHERS, K_COUNTED, K_SCHEDULES = P .. 'dispatchers', P .. 'nc', P .. 'schedules'
  K_WAITERS, K_BLOCKED = P .. 'W', P .. 'b'
  K_LEVELS, K_GROUPS = P .. 'HL', P .. 'Gt'
  TAIL = #ARGV - 4
  MAX_HISTORY = tonumber(ARGV[TAIL + 1])
  OUTCOME_MINUTES = tonumber(ARGV[TAIL + 4])
  paused_names, reserved_seq, claimed_by = nil, nil, nil
  levels_listed, spec, run = nil, nil, nil
  id_block, seq_block = nil, nil
  count_changes, active_changes, outcome_changes = {}, {}, {}
end

-- NOW, read on first use by a call whose `begin` skipped it (scripts.py does not count a
-- script using only this as reading the clock): the common submit, of jobs due now, never
-- pays for TIME. With effects replication (Redis 5+ by default, always on 7) a TIME after
-- the call's first write is allowed.
local function clock_now()
  if not NOW then
    NOWS = ARGV[2] ~= '' and ARGV[2] or server_now()
    NOW = tonumber(NOWS)
  end
  return NOW
end

-- Housekeeping does at most this much per call, so no call runs long.
local BATCH = 1000

-- A time argument: '+seconds' from NOW, or an absolute time passed through unchanged.
local function at(t)
  if string.sub(t, 1, 1) == '+' then return string.format('%.17g', NOW + tonumber(string.sub(t, 2))) end
  return t
end

-- A retention age in seconds as the cut-off time on NOW ('' = no age limit).
local function cutoff(age)
  if age == '' then return nil end
  return NOW - tonumber(age)
end
