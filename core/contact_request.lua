-- A family asks to become a resident's contact: the pending contact, its two indexes and the
-- facility's queue of requests, in one step, unless the contact exists already (whatever its
-- status: a refused or removed contact is not asked for again by this).
--
-- KEYS[1]  contact:{resident_id}:{family_id}   the contact (JSON)
-- KEYS[2]  contacts:of:{resident_id}           the resident's contacts' family ids
-- KEYS[3]  contacts:for:{family_id}            the family's contacts' resident ids
-- KEYS[4]  contact_requests:{facility_id}      the resident's facility's requests
-- ARGV[1]  the pending contact (JSON)
-- ARGV[2]  family_id
-- ARGV[3]  resident_id
-- ARGV[4]  when it is asked (Unix seconds): the request's score in KEYS[4]
-- Returns the existing contact (JSON), nothing written; or false (nil): the request is made.

if ARGV[2] == '' or ARGV[3] == '' or not tonumber(ARGV[4]) then
  return redis.error_reply('invalid: a family id, a resident id and a time')
end
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3] .. ':' .. ARGV[2])
return false
