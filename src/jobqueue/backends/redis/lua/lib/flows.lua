-- Flows (apply.lua): a dependency's outcome delivered to a dependent (Change.deliver), its
-- guard and its write. A change carries it as its last three field pairs: '@' the
-- dependency's id, '@s' the state letters it must be in, '@o' the JSON member
-- '"id":outcome' to put in the dependent's outcomes (field Y).

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

-- Where the JSON string opening at `pos` of `text` closes (its last quote), or nil.
local function string_end(text, pos)
  repeat
    pos = string.find(text, '["\\]', pos + 1)
    if not pos then return nil end
    local escaped = string.sub(text, pos, pos) == '\\'
    if escaped then pos = pos + 1 end
  until not escaped
  return pos
end

-- The top-level members of a JSON object's text ('"key":value' each), found by skipping
-- strings and counting brackets: Lua's cjson would re-print numbers with 14 digits, so the
-- stored text is cut, never re-encoded.
local function json_members(text)
  local members, start, depth, pos = {}, 2, 0, 2
  while pos < #text do
    local c = string.sub(text, pos, pos)
    if c == '"' then
      pos = string_end(text, pos)
      if not pos then return members end
    elseif c == '{' or c == '[' then
      depth = depth + 1
    elseif c == '}' or c == ']' then
      depth = depth - 1
    elseif c == ',' and depth == 0 then
      members[#members + 1] = string.sub(text, start, pos - 1)
      start = pos + 1
    end
    pos = pos + 1
  end
  if #text > 2 then members[#members + 1] = string.sub(text, start, #text - 1) end
  return members
end

-- Outcomes text `text` (field Y, or false) with `member` ('"id":outcome') in, replacing the
-- member of the same key (`key`, '"id"') if any: a delivery written again (a resend) stays
-- one entry. Also whether the key is new.
local function with_member(text, key, member)
  if not text or string.sub(text, 1, 1) ~= '{' or text == '{}' then
    return '{' .. member .. '}', true
  end
  if not string.find(text, key .. ':', 1, true) then
    return string.sub(text, 1, -2) .. ',' .. member .. '}', true
  end
  local members, kept = json_members(text), {}
  for _, m in ipairs(members) do
    if string.sub(m, 1, #key + 1) ~= key .. ':' then kept[#kept + 1] = m end
  end
  local added = #kept == #members -- (the text matched inside a nested value)
  kept[#kept + 1] = member
  return '{' .. table.concat(kept, ',') .. '}', added
end

-- How many distinct dependencies in `edges` (field A's text) have no outcome in `outcomes`
-- (field Y's text, or false): both decoded, so only where a change sets the outcomes whole
-- (or for a record without its count, field Z).
local function pending_count(edges, outcomes)
  local ok, deps = pcall(cjson.decode, edges or '[]')
  local read, have = pcall(cjson.decode, outcomes or '{}')
  if not (ok and type(deps) == 'table') then return 0 end
  if not (read and type(have) == 'table') then have = {} end
  local seen, count = {}, 0
  for _, edge in ipairs(deps) do
    local dep = type(edge) == 'table' and edge[1]
    if dep and not seen[dep] then
      seen[dep] = true
      if have[dep] == nil then count = count + 1 end
    end
  end
  return count
end

-- The delivery at ARGV[at_key] written to job `id`: the state the change moves it to, its
-- new outcomes text and its count of dependencies still without one (field Z, kept so that
-- a fan-in of thousands never decodes its outcomes per delivery). The state is `to`,
-- except that a move to waiting happens only once every dependency (field A) has an
-- outcome (else the job stays blocked), and goes to delayed when its run_at (`run_at` the
-- change's delay, '' = as stored) is after NOW, as a submit decides.
local function delivered(id, to, run_at, at_key)
  local f = fields(id, 'Y', 'A', 'Z', 'r', 'c') or {}
  local member = ARGV[at_key + 5]
  local key = string.sub(member, 1, string_end(member, 1) or #member)
  local outcomes, added = with_member(f[1], key, member)
  local pending = tonumber(f[3])
  if not pending then
    pending = pending_count(f[2], outcomes)
  elseif added and f[2] and string.find(f[2], '[' .. key .. ',', 1, true) then
    pending = pending - 1 -- a dependency's first outcome (edges are [id, rule] lists)
  end
  if to == 'w' and pending > 0 then to = 'b' end
  if to == 'w' then
    local due = run_at ~= '' and NOW + tonumber(run_at) or tonumber(f[4] or f[5]) or NOW
    if due > NOW then to = 'd' end
  end
  return to, outcomes, string.format('%d', pending)
end
