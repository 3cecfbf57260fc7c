-- Count a facility's settled call once in its local day, whatever retries settlement makes.
--
-- KEYS[1]  stats:{facility_id}:{day}          the day's hash: calls, connected_seconds,
--                                             revenue_cents (and refused:<reason> counts)
-- KEYS[2]  stats:{facility_id}:{day}:calls    the call ids already counted that day
-- ARGV[1]  call_id (not empty)
-- ARGV[2]  the call's connected seconds (an integer >= 0)
-- ARGV[3]  what the family was charged, in cents (an integer >= 0)
-- ARGV[4]  how long both keys are kept after this write, in seconds (> 0)
-- Returns 1 if the call was counted now, 0 if it had been before (only the TTLs renewed).

local seconds, cents, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[1] == '' or not seconds or seconds < 0 or not cents or cents < 0 or not ttl or ttl <= 0 then
  return redis.error_reply('invalid: a call id, seconds and cents >= 0, a positive ttl')
end
local counted = redis.call('SADD', KEYS[2], ARGV[1])
if counted == 1 then
  redis.call('HINCRBY', KEYS[1], 'calls', 1)
  redis.call('HINCRBY', KEYS[1], 'connected_seconds', seconds)
  redis.call('HINCRBY', KEYS[1], 'revenue_cents', cents)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return counted
