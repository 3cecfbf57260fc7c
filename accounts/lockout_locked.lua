-- Whether an account is locked out: drops the failures that left the window, then counts.
-- KEYS[1]  the account's failures (lockout:{name}:{account}, a sorted set scored by when)
-- ARGV[1]  now (seconds)
-- ARGV[2]  the window (seconds)
-- ARGV[3]  the limit (failures within the window that lock the account)
-- Returns the seconds until the account may try again (a string: fractional), or '-1' if it
-- may now. Writes nothing but the removal of failures older than the window.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
if count < limit then return '-1' end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + ARGV[2] - ARGV[1])
