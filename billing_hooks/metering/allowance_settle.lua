-- Consume a call's reservation at the end: exactly once per call. It runs in the same MULTI as
-- the ledger's settlement of the call (billing_hooks/biller.py), so the agency's part and the
-- family's charge are written together or not at all.
--
-- KEYS[1]  allow:call:{call_id}                 the call's hash (see allowance_reserve.lua)
-- KEYS[2]  allow:{resident_id}:{period}:{start} the period the call reserved in (read first, under
--                                               WATCH of KEYS[1]; when it reserved nothing,
--                                               allowance.NO_PERIOD, never touched)
-- KEYS[3]  agency:{facility_id}:{day}           the facility's local day: agency_seconds, calls
-- ARGV[1]  consumed: the agency's seconds of the call (capped here by what was reserved)
-- ARGV[2]  ttl: seconds KEYS[1] and KEYS[2] are kept after this write
-- ARGV[3]  ttl of KEYS[3]
-- Returns {state, consumed}: 'settled' (now or before) or 'void' (no reservation: the call
-- reserved nothing, and a connect that comes later reserves nothing either).

local c = redis.call('HMGET', KEYS[1], 'state', 'period', 'consumed', 'granted')
local state, ttl = c[1], tonumber(ARGV[2])
if state == 'settled' or state == 'void' then return {state, tonumber(c[3]) or 0} end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'void', 'granted', 0, 'consumed', 0, 'period', '')
  redis.call('EXPIRE', KEYS[1], ttl)
  return {'void', 0}
end
if c[2] ~= KEYS[2] then return redis.error_reply('period_mismatch') end
local granted = tonumber(c[4]) or 0
local used = math.max(0, math.min(tonumber(ARGV[1]), granted))
redis.call('HINCRBY', KEYS[2], 'reserved', 0 - granted)  -- never -0: not an integer to Redis
redis.call('HINCRBY', KEYS[2], 'used', used)
redis.call('HSET', KEYS[1], 'state', 'settled', 'consumed', used)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if used > 0 then
  redis.call('HINCRBY', KEYS[3], 'agency_seconds', used)
  redis.call('HINCRBY', KEYS[3], 'calls', 1)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
end
return {'settled', used}
