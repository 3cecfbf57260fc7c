-- Apply one row of the call's transition table (signaling/call_machine.py), atomically: check
-- the stored state, write the new one and its fields, free busy slots, move timers.
--
-- KEYS[1]  call:{call_id}                the call record (a hash)
-- KEYS[2]  busy:resident:{resident_id}   freed (if it still names this call) on 'both'
-- KEYS[3]  busy:family:{family_id}       freed (if it still names this call) on 'both', 'family'
-- KEYS[4]  calls:live:{facility_id}      the call leaves it on 'both' and 'family'
-- KEYS[5]  timers:due                    ZSET of durable timers
-- ARGV[1]  the states it may leave from, comma-separated
-- ARGV[2]  the new state
-- ARGV[3]  whose busy slot it frees: 'both' (the call is over: the record expires too),
--          'family' (a hidden reject), 'none'
-- ARGV[4]  timer members to cancel, comma-separated
-- ARGV[5]  timers to arm, comma-separated "member=due_ms"
-- ARGV[6]  how long an ended call's record is kept (s)
-- ARGV[7..] field, value pairs to set
-- Returns {'ok', previous state}, {'refused', current state} or {'missing', ''}.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {'refused', state} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if #ARGV > 6 then redis.call('HSET', KEYS[1], unpack(ARGV, 7)) end
local call_id = redis.call('HGET', KEYS[1], 'call_id')
if ARGV[3] == 'both' then
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  if redis.call('GET', KEYS[2]) == call_id then redis.call('DEL', KEYS[2]) end
  if redis.call('GET', KEYS[3]) == call_id then redis.call('DEL', KEYS[3]) end
  redis.call('SREM', KEYS[4], call_id)
elseif ARGV[3] == 'family' then
  if redis.call('GET', KEYS[3]) == call_id then redis.call('DEL', KEYS[3]) end
  redis.call('SREM', KEYS[4], call_id)
end
for m in string.gmatch(ARGV[4], '[^,]+') do redis.call('ZREM', KEYS[5], m) end
for m, due in string.gmatch(ARGV[5], '([^,=]+)=(%d+)') do redis.call('ZADD', KEYS[5], due, m) end
return {'ok', state}
