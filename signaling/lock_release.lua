-- Release a lock only if this holder still holds it.
--
-- KEYS[1]  the lock (e.g. finish:{call_id})
-- ARGV[1]  the holder's token
-- Returns 1 if released, 0 if it was gone or held by another.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
