#!lua flags=allow-oom
-- Delete jobs whatever their state (Backend.delete). ARGV[9] count, then the ids. Returns how
-- many existed. A resend after a lost reply finds them gone: only the count is lost.
local deleted = 0
for n = 10, 9 + tonumber(ARGV[9]) do
  if redis.call('EXISTS', job_key(ARGV[n])) == 1 then
    drop_job(ARGV[n])
    deleted = deleted + 1
  end
end
return deleted
