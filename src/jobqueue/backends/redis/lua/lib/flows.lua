-- Flows (apply.lua): a dependency's outcome delivered to a dependent (Change.deliver), its
-- guard and its write. A change carries it as its last three field pairs: '@' the
-- dependency's id, '@s' the state letters it must be in, '@o' its outcome (JSON) for the
-- dependent's outcomes (outcomes_key).

-- Where the delivery of the change at ARGV[i] starts (its '@' pair), or nil.
local function delivery_at(i)
  local nfields = tonumber(ARGV[i + 12])
  local at_key = i + 7 + 2 * nfields -- the third pair from the end
  if nfields >= 3 and ARGV[at_key] == '@' then return at_key end
  return nil
end

-- The delivery's own guard: the dependency exists and is in one of its states. nil when it
-- holds, else the conflict (as check_guard answers it) showing the dependent `f` (LOOK).
local function check_delivery(f, at_key)
  local state = field(ARGV[at_key + 1], 's')
  if state and #state == 1 and string.find(ARGV[at_key + 3], state, 1, true) then return nil end
  return {f[1] or '', 0, '', f[5] == '1' and 1 or 0, ''}
end

-- How many distinct dependencies in `edges` (field A's text, or false) have no outcome in
-- `have` (a set of ids, outcome_ids): decoded, so only where the outcomes are set whole (or
-- for a record without its count, field Z).
local function pending_count(edges, have)
  local ok, deps = pcall(cjson.decode, edges or '[]')
  if not (ok and type(deps) == 'table') then return 0 end
  local seen, count = {}, 0
  for _, edge in ipairs(deps) do
    local dep = type(edge) == 'table' and edge[1]
    if type(dep) == 'string' and not seen[dep] then
      seen[dep] = true
      if not have[dep] then count = count + 1 end
    end
  end
  return count
end

-- The delivery at ARGV[at_key] written to job `id`: its outcome put in the job's outcomes
-- (one HSET, replacing the dependency's earlier one: a resend stays one entry), then the
-- state the change moves it to, field Y's marker, and the count of dependencies still
-- without an outcome (field Z: a fan-in of thousands costs the same per delivery as a
-- chain). The state is `to`, except that a move to waiting happens only once every
-- dependency has an outcome (else the job stays blocked), and goes to delayed when its
-- run_at (`run_at` the change's delay, '' = as stored) is after NOW, as a submit decides.
-- (The core delivers only along the flow's edges: `from` is one of the job's dependencies.)
local function delivered(id, to, run_at, at_key)
  local added = put_outcome(id, ARGV[at_key + 1], ARGV[at_key + 5])
  local f = fields(id, 'Z', 'r', 'c') or {}
  local pending = tonumber(f[1])
  if not pending then
    pending = pending_count(field(id, 'A'), outcome_ids(id))
  elseif added then
    pending = pending - 1
  end
  if to == 'w' and pending > 0 then to = 'b' end
  if to == 'w' then
    local due = run_at ~= '' and NOW + tonumber(run_at) or tonumber(f[2] or f[3]) or NOW
    if due > NOW then to = 'd' end
  end
  return to, '1', string.format('%d', math.max(pending, 0))
end
