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
-- one entry.
local function with_member(text, key, member)
  if not text or string.sub(text, 1, 1) ~= '{' or text == '{}' then
    return '{' .. member .. '}'
  end
  if not string.find(text, key .. ':', 1, true) then
    return string.sub(text, 1, -2) .. ',' .. member .. '}'
  end
  local kept = {}
  for _, m in ipairs(json_members(text)) do
    if string.sub(m, 1, #key + 1) ~= key .. ':' then kept[#kept + 1] = m end
  end
  kept[#kept + 1] = member
  return '{' .. table.concat(kept, ',') .. '}'
end

-- The delivery at ARGV[at_key] written to job `id`: its new outcomes text, and the state the
-- change moves it to -- `to`, except that a move to waiting happens only once every
-- dependency (field A) has an outcome (else the job stays blocked), and goes to delayed
-- when its run_at (`run_at` the change's delay, '' = as stored) is after NOW, as a submit
-- decides.
local function delivered(id, to, run_at, at_key)
  local f = fields(id, 'Y', 'A', 'r', 'c') or {}
  local member = ARGV[at_key + 5]
  local key = string.sub(member, 1, string_end(member, 1) or #member)
  local outcomes = with_member(f[1], key, member)
  if to ~= 'w' then return to, outcomes end
  local ok, have = pcall(cjson.decode, outcomes)
  local read, edges = pcall(cjson.decode, f[2] or '[]')
  if not (ok and type(have) == 'table' and read and type(edges) == 'table') then
    return 'b', outcomes -- unreadable: it waits (the core sees the record as it is)
  end
  for _, edge in ipairs(edges) do
    if type(edge) ~= 'table' or have[edge[1]] == nil then return 'b', outcomes end
  end
  local due = run_at ~= '' and NOW + tonumber(run_at) or tonumber(f[3] or f[4]) or NOW
  return due > NOW and 'd' or 'w', outcomes
end
