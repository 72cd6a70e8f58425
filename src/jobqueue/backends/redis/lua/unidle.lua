#!lua flags=allow-oom
-- A waiter's block ended with nothing in its inbox (it timed out, or it stops): forget its
-- registration, and take what was delivered in between. ARGV[9] token, [10] '1' when its
-- block failed (the connection dropped): a job handed to it then may have been popped and
-- lost on the way, so the job its token holds is looked up and returned -- as it is when
-- this call repeats one whose reply was lost. Returns the
-- inbox's message (a handed job as JSON, or 'w'), or nil.
local token = ARGV[9]
local record = waiter_record(token)
if record then withdraw_waiter(token, record, false) end
local k = inbox_key(token)
local message = redis.call('RPOP', k)
redis.call('DEL', k)
if message then return message end
if ARGV[10] == '1' or REPEAT then
  for _, id in ipairs(redis.call('ZRANGE', K_ACTIVE, 0, -1)) do
    if field(id, 'k') == token then return cjson.encode(snapshot(id)) end
  end
end
return nil
