-- Decides on a family's pending identity submission, once: two admins deciding at once, or a
-- family re-submitting meanwhile, cannot both win.
-- KEYS[1]  the family's record (identity:{family_id}, JSON with 'status' and 'submission')
-- KEYS[2]  the review queue (identity_review:pending)
-- ARGV[1]  the submission id decided on
-- ARGV[2]  the decided record (JSON)
-- ARGV[3]  the family id (leaves the queue)
-- Returns 'ok', or why not (nothing written): 'none' (no record), 'state' (not pending, or
-- another submission than ARGV[1]).
local current = redis.call('GET', KEYS[1])
if not current then return 'none' end
local record = cjson.decode(current)
if record['status'] ~= 'pending' or record['submission'] ~= ARGV[1] then return 'state' end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
return 'ok'
