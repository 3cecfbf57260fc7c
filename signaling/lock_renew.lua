-- Renew a lock this holder still holds (SET NX PX token).
--
-- KEYS[1]  the lock (e.g. finish:{call_id})
-- ARGV[1]  the holder's token
-- ARGV[2]  the new lifetime (ms)
-- Returns 1 if renewed, 0 if the lock is gone or held by another.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
