-- The attempt history (field H): a bounded JSON list of the attempts that ended.

-- `history` (field H's text) cut to its newest `keep` records. Every record starts with
-- {"number": -- a text that cannot occur inside a JSON string (its quote would be escaped)
-- -- so records are counted and the oldest cut without decoding the list.
local function cut_history(history, keep)
  local starts = {}
  local pos = 2
  while true do
    local found = string.find(history, '{"number":', pos, true)
    if not found then break end
    starts[#starts + 1] = found
    pos = found + 10
  end
  if #starts <= keep then return history end
  if keep <= 0 then return nil end
  return '[' .. string.sub(history, starts[#starts - keep + 1])
end

-- `history` (field H's text, or false) with the record of the attempt that ended now
-- appended, cut to MAX_HISTORY: `made` its number (attempts made, as stored), `dispatcher`
-- and `started` the stored D and b, `outcome` an AttemptOutcome value, `err` error JSON or
-- nil. The record is JSON text spliced by hand: cjson would print the timestamps with 14
-- digits (losing sub-second precision), so the exact stored texts are copied in and cjson
-- only quotes the dispatcher id.
local function with_attempt(history, made, dispatcher, started, outcome, err)
  -- Stored texts go in only when they are JSON numbers (a corrupt field must not make the
  -- whole history unreadable); Python's repr of a float always is one.
  local number = tostring(math.floor(tonumber(made) or 0))
  started = started and string.find(started, '^%-?%d+%.?%d*[eE]?[-+]?%d*$') and started or 'null'
  local entry = '{"number":' .. number .. ',"dispatcher":'
    .. (dispatcher and cjson.encode(dispatcher) or 'null') .. ',"started_at":' .. started
    .. ',"finished_at":' .. NOWS .. ',"outcome":"' .. outcome .. '","error":'
    .. (err or 'null') .. '}'
  if not history or string.sub(history, 1, 11) ~= '[{"number":' then
    return '[' .. entry .. ']'
  end
  return cut_history(string.sub(history, 1, -2) .. ',' .. entry .. ']', MAX_HISTORY)
end

-- A completion's record is implicit: attempts made (m), dispatcher (D, kept for it), started
-- (b) and finished (e) of the COMPLETED job say everything it would, and the codec appends
-- it to H when decoding. So a job completed on its first attempt stores no history at all:
-- a spliced record is over 64 bytes, which would turn the whole hash from Redis's compact
-- listpack into a hashtable (hash-max-listpack-value) -- three times the memory of every
-- retained job. H keeps room for the implicit record: `history` (field H's text) with room
-- made for it is the same text, cut, or nil when it is unreadable (then it goes, as a
-- spliced record would replace it).
local function room_for_completion(history)
  if string.sub(history, 1, 11) ~= '[{"number":' then return nil end
  return cut_history(history, MAX_HISTORY - 1)
end
