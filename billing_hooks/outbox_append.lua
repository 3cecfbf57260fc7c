-- Append an event to an outbox once: an id appended before (a retried operation re-emits the
-- same id) within the dedupe TTL adds nothing.
--
-- KEYS[1]  <stream>                    the outbox stream (e.g. billing:outbox)
-- KEYS[2]  <stream>:seen:{event_id}    the event id's dedupe marker
-- ARGV[1]  event_id (not empty)
-- ARGV[2]  body: the event's JSON, delivered as is
-- ARGV[3]  dedupe TTL in seconds (> 0): how long KEYS[2] refuses the id again
-- Returns the new entry's stream id, or false (nil) if the id was seen (nothing written).

local ttl = tonumber(ARGV[3])
if ARGV[1] == '' or not ttl or ttl <= 0 then
  return redis.error_reply('invalid: an event id and a positive dedupe TTL')
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl) then
  return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'body', ARGV[2])
end
return false
