-- Reserve a call's part of a resident's agency-paid allowance, at connect: atomically, once per
-- call (a retry returns the first reservation), never more than what remains of the period, so
-- two calls of one resident on two nodes can never use the same seconds.
--
-- KEYS[1]  allow:call:{call_id}                 the call's hash: state, granted, period, consumed
-- KEYS[2]  allow:{resident_id}:{period}:{start} the period's hash: used, reserved (seconds)
-- ARGV[1]  want: the seconds the call would use of it at most (>= 0)
-- ARGV[2]  limit: the allowance of the period in seconds, or -1 for none (agency, no cap)
-- ARGV[3]  ttl: seconds both keys are kept after this write
-- Returns {state, granted, period}: state 'reserved' (now or before), 'settled' (retried after
-- the end) or 'void' (the call was settled before it reserved: nothing is granted, ever).

local state = redis.call('HGET', KEYS[1], 'state')
if state then
  local c = redis.call('HMGET', KEYS[1], 'granted', 'period')
  return {state, tonumber(c[1]) or 0, c[2] or ''}
end
local want, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local grant = want
if limit >= 0 then
  local p = redis.call('HMGET', KEYS[2], 'used', 'reserved')
  local left = limit - (tonumber(p[1]) or 0) - (tonumber(p[2]) or 0)
  grant = math.max(0, math.min(want, left))
end
redis.call('HINCRBY', KEYS[2], 'reserved', grant)
redis.call('HSET', KEYS[1], 'state', 'reserved', 'granted', grant, 'period', KEYS[2], 'consumed', 0)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {'reserved', grant, KEYS[2]}
