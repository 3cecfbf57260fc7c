-- Move one visit to a new status, atomically, only from the statuses allowed (so a staff
-- cancel, a family cancel and the end-of-slot timer never both apply). Leaving the holding
-- statuses (to canceled or denied) gives back the station, the week and the time.
--
-- (The keys: visits.redis_keys, in this order VISIT, SLOT, RESIDENT_HOLDS, FAMILY_HOLDS.)
-- KEYS[1]  visits:v:{visit_id}            the visit's hash
-- KEYS[2]  visits:slot:{facility}:{start} SET of the holding visit ids in this slot
-- KEYS[3]  visits:holds:resident:{id}     ZSET of the resident's holding visits
-- KEYS[4]  visits:holds:family:{id}       ZSET of the family's holding visits
-- ARGV[1]  the new status
-- ARGV[2]  the statuses it may come from, comma-separated
-- ARGV[3]  1: the new status still holds (completed, missed, booked); 0: release
-- ARGV[4]  the hold member ("end|visit_id")
-- ARGV[5]  visit_id
-- ARGV[6..] more fields to set, as field, value pairs (updated_at, reason, ...)
-- Returns {1, previous status} when applied, {0, current status or ""} when not.

local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {0, ''} end
local allowed = false
for status in string.gmatch(ARGV[2], '[^,]+') do
  if status == current then allowed = true end
end
if not allowed then return {0, current} end

redis.call('HSET', KEYS[1], 'status', ARGV[1])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] == '0' then
  redis.call('SREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('ZREM', KEYS[4], ARGV[4])
end
return {1, current}
