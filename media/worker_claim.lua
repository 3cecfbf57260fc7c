-- Forget a dead worker and hand back its calls, exactly once across signaling nodes
-- (media.control.SfuControl.claim_dead_worker): nothing happens while the worker is alive or
-- once another node has claimed it.
--
-- KEYS[1]  sfu:workers              SET of registered worker ids
-- KEYS[2]  sfu:alive:{worker_id}    the worker's heartbeat (must be gone)
-- KEYS[3]  sfu:calls:{worker_id}    SET of the calls open on it (deleted)
-- KEYS[4]  sfu:last_beat            HASH worker id -> last heartbeat (its field deleted)
-- ARGV[1]  worker_id
-- Derived from the calls' ids (media.redis_keys.CALL_WORKER): sfu:call:{call_id}, the worker
-- holding each call, deleted only if it still names this worker (a call re-opened elsewhere
-- keeps its new worker).
-- Returns the worker's call ids (possibly none), or nil (false) if it is alive or already
-- claimed.

if redis.call('EXISTS', KEYS[2]) == 1 then return false end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return false end
local calls = redis.call('SMEMBERS', KEYS[3])
for _, call in ipairs(calls) do
  local key = 'sfu:call:' .. call
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[4], ARGV[1])
return calls
