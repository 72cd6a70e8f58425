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

-- Append the record of the attempt that just ended to the job's history (field H, cut to
-- MAX_HISTORY) and forget its dispatcher. `outcome` is an AttemptOutcome value, `err` error
-- JSON or nil. The record is JSON text spliced by hand: cjson would print the timestamps
-- with 14 digits (losing sub-second precision), so the exact stored texts are copied in and
-- cjson only quotes the dispatcher id.
local function record_attempt(id, outcome, err)
  local f = fields(id, 'm', 'D', 'b', 'H')
  if not f then return end
  -- Stored texts go in only when they are JSON numbers (a corrupt field must not make the
  -- whole history unreadable); Python's repr of a float always is one.
  local number = tostring(math.floor(tonumber(f[1]) or 0))
  local started = f[3] and string.find(f[3], '^%-?%d+%.?%d*[eE]?[-+]?%d*$') and f[3] or 'null'
  local entry = '{"number":' .. number .. ',"dispatcher":'
    .. (f[2] and cjson.encode(f[2]) or 'null') .. ',"started_at":' .. started
    .. ',"finished_at":' .. NOWS .. ',"outcome":"' .. outcome .. '","error":'
    .. (err or 'null') .. '}'
  local history = f[4]
  if not history or string.sub(history, 1, 11) ~= '[{"number":' then
    history = '[' .. entry .. ']'
  else
    history = cut_history(string.sub(history, 1, -2) .. ',' .. entry .. ']', MAX_HISTORY)
  end
  redis.call('HSET', job_key(id), 'H', history)
  redis.call('HDEL', job_key(id), 'D')
end

-- A completion's record is implicit: attempts made (m), dispatcher (D, kept for it), started
-- (b) and finished (e) of the COMPLETED job say everything it would, and the codec appends
-- it to H when decoding. So a job completed on its first attempt stores no history at all:
-- a spliced record is over 64 bytes, which would turn the whole hash from Redis's compact
-- listpack into a hashtable (hash-max-listpack-value) -- three times the memory of every
-- retained job. H keeps room for the implicit record.
local function record_completion(id, history)
  if not history then return end
  -- An unreadable H goes, as record_attempt would replace it: the history starts over.
  local kept = string.sub(history, 1, 11) == '[{"number":' and cut_history(history, MAX_HISTORY - 1)
  if not kept then
    redis.call('HDEL', job_key(id), 'H')
  elseif kept ~= history then
    redis.call('HSET', job_key(id), 'H', kept)
  end
end
