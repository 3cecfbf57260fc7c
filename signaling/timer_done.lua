-- Remove a handled timer, only if it still holds the lease we claimed (a timer re-armed while
-- its handler ran stays armed).
--
-- KEYS[1]  timers:due              ZSET of durable timers
-- ARGV[1]  the member
-- ARGV[2]  the score (lease) we hold
-- Returns 1 if removed, else 0.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
