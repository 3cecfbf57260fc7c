-- Makes a submission a family's pending identity review (replacing a pending or rejected one).
-- KEYS[1]  the family's record (identity:{family_id}, JSON with 'status' and 'submission')
-- KEYS[2]  the review queue (identity_review:pending, family ids scored by submission time)
-- ARGV[1]  the new record (JSON, status 'pending')
-- ARGV[2]  when it was submitted (the queue's score)
-- ARGV[3]  the family id (the queue's member)
-- Returns the record it replaced ('' if none), or false if the family is verified already
-- (nothing written).
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['status'] == 'verified' then return false end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return current or ''
