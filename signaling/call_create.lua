-- Store a new ringing call, unless either party is already in one (SPEC rule 2).
--
-- KEYS[1]  busy:resident:{resident_id}   the resident's current call id
-- KEYS[2]  busy:family:{family_id}       the family's current call id
-- KEYS[3]  call:{call_id}                the call record (a hash)
-- KEYS[4]  calls:live:{facility_id}      SET of the facility's live call ids
-- KEYS[5]  timers:due                    ZSET of durable timers (member "kind|call_id", due ms)
-- ARGV[1]  call_id
-- ARGV[2]  the ring timer's member
-- ARGV[3]  the ring timer's due time (ms)
-- ARGV[4..] the record's field, value pairs
-- Returns 'ok', or 'busy' (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 'busy'
end
local call_id = ARGV[1]
redis.call('SET', KEYS[1], call_id)
redis.call('SET', KEYS[2], call_id)
redis.call('HSET', KEYS[3], unpack(ARGV, 4))
redis.call('SADD', KEYS[4], call_id)
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
return 'ok'
