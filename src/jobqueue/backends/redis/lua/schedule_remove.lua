#!lua flags=allow-oom
-- Forget the schedule ARGV[9]: its record and recent ticks (its jobs stay). Returns 1 if it
-- had a record. A resend (reply lost) finds none and answers 0: as with purge, only the
-- first run's answer is lost, never anything stored.
local name = ARGV[9]
redis.call('SREM', K_SCHEDULES, name)
return redis.call('DEL', schedule_key(name), schedule_ticks_key(name)) > 0 and 1 or 0
