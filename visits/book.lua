-- Book one visit, atomically: the slot's stations, the resident's week, and neither side
-- already holding a visit at that time (visits/rules.py check_holds, same order).
--
-- (The keys: visits.redis_keys, in this order VISIT, SLOT, RESIDENT_HOLDS, FAMILY_HOLDS,
-- RESIDENT_VISITS, FAMILY_VISITS, FACILITY_VISITS.)
-- KEYS[1]  visits:v:{visit_id}            the visit's hash (must not exist)
-- KEYS[2]  visits:slot:{facility}:{start} SET of the holding visit ids in this slot
-- KEYS[3]  visits:holds:resident:{id}     ZSET of the resident's holding visits ("end|id" by start)
-- KEYS[4]  visits:holds:family:{id}       ZSET of the family's holding visits ("end|id" by start)
-- KEYS[5]  visits:all:resident:{id}       ZSET of all the resident's visits (id by start)
-- KEYS[6]  visits:all:family:{id}         ZSET of all the family's visits (id by start)
-- KEYS[7]  visits:all:facility:{id}       ZSET of all the facility's visits (id by start)
-- ARGV[1]  visit_id
-- ARGV[2]  start (Unix seconds)
-- ARGV[3]  end (Unix seconds)
-- ARGV[4]  the first instant of the slot's local week (Unix seconds)
-- ARGV[5]  the first instant after that week (Unix seconds)
-- ARGV[6]  concurrent: visits at most in this slot
-- ARGV[7]  max_per_week: the resident's visits at most in that week
-- ARGV[8]  the longest visit (seconds): how far back an overlapping visit may start
-- ARGV[9..] the visit's hash, as field, value pairs
-- Returns {1, "booked"} or {0, code}: "exists", "conflict", "weekly_limit", "slot_full".

local visit_id, start, finish = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'exists'} end

local function overlapping(key)
  local near = redis.call('ZRANGEBYSCORE', key, start - tonumber(ARGV[8]), '(' .. finish)
  for _, member in ipairs(near) do
    local other_end = tonumber(string.match(member, '^([^|]+)|'))
    if other_end and other_end > start then return true end
  end
  return false
end

if overlapping(KEYS[3]) or overlapping(KEYS[4]) then return {0, 'conflict'} end
if redis.call('ZCOUNT', KEYS[3], ARGV[4], '(' .. ARGV[5]) >= tonumber(ARGV[7]) then
  return {0, 'weekly_limit'}
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[6]) then return {0, 'slot_full'} end

local pairs_ = {}
for i = 9, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(pairs_))
local hold = ARGV[3] .. '|' .. visit_id
redis.call('SADD', KEYS[2], visit_id)
redis.call('ZADD', KEYS[3], start, hold)
redis.call('ZADD', KEYS[4], start, hold)
redis.call('ZADD', KEYS[5], start, visit_id)
redis.call('ZADD', KEYS[6], start, visit_id)
redis.call('ZADD', KEYS[7], start, visit_id)
return {1, 'booked'}
