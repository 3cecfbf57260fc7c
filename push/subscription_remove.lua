-- Removes one of a family's push subscriptions, and its endpoint's index if it still names it.
-- KEYS[1]  the family's subscriptions (push:subs:{family_id}: id -> JSON record)
-- ARGV[1]  the family id
-- ARGV[2]  the subscription id
-- The index deleted is the key the record's 'endpoint_key' names (push:endpoint:{digest}),
-- only while it holds "<ARGV[1]>\n<ARGV[2]>" (the endpoint may have moved on since).
-- Returns 1 if removed, 0 if the family has no such subscription (nothing written).
local old = redis.call('HGET', KEYS[1], ARGV[2])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
local key = cjson.decode(old)['endpoint_key']
if key and redis.call('GET', key) == ARGV[1] .. '\n' .. ARGV[2] then redis.call('DEL', key) end
return 1
