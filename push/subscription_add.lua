-- Stores a family's push subscription: the same endpoint again keeps its id (and created_at),
-- an endpoint another family held leaves that family, and past the cap the oldest goes.
-- KEYS[1]  the family's subscriptions (push:subs:{family_id}: id -> JSON record)
-- KEYS[2]  the endpoint's index (push:endpoint:{digest}: "<family id>\n<id>")
-- ARGV[1]  the family id
-- ARGV[2]  the new subscription's id
-- ARGV[3]  its record (JSON; its 'endpoint_key' is KEYS[2])
-- ARGV[4]  the most subscriptions a family keeps
-- ARGV[5]  the prefix of a family's subscriptions ('push:subs:'): the other family holding the
--          endpoint is ARGV[5] .. <its id> (push.redis_keys.SUBSCRIPTIONS); the oldest record's
--          index is the key its 'endpoint_key' names (push.redis_keys.ENDPOINT)
-- Returns {id, created (1 new, 0 the same endpoint again), the id replaced to make room or ''}.
local idx = redis.call('GET', KEYS[2])
if idx then
  local sep = string.find(idx, '\n', 1, true)
  local fam = string.sub(idx, 1, sep - 1)
  local id = string.sub(idx, sep + 1)
  if fam == ARGV[1] then
    local old = redis.call('HGET', KEYS[1], id)
    if old then
      local rec = cjson.decode(ARGV[3])
      rec['id'] = id
      rec['created_at'] = cjson.decode(old)['created_at']
      redis.call('HSET', KEYS[1], id, cjson.encode(rec))
      return {id, 0, ''}
    end
  else
    redis.call('HDEL', ARGV[5] .. fam, id)
  end
end
local replaced = ''
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  local oldest, oldest_at, oldest_key = nil, nil, nil
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local rec = cjson.decode(all[i + 1])
    local at = tonumber(rec['created_at'])
    if oldest_at == nil or at < oldest_at or (at == oldest_at and all[i] < oldest) then
      oldest, oldest_at, oldest_key = all[i], at, rec['endpoint_key']
    end
  end
  redis.call('HDEL', KEYS[1], oldest)
  if oldest_key then redis.call('DEL', oldest_key) end
  replaced = oldest
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1] .. '\n' .. ARGV[2])
return {ARGV[2], 1, replaced}
