-- Counts one failed sign-in of an account; the set lives as long as the window.
-- KEYS[1]  the account's failures (lockout:{name}:{account}, a sorted set scored by when)
-- ARGV[1]  now (seconds)
-- ARGV[2]  the window (seconds; the set expires this long after the last failure, rounded up)
-- ARGV[3]  the failure's member (unique: now and a random tag)
-- Returns the failures now in the window, this one included.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return redis.call('ZCARD', KEYS[1])
