-- Claim the due timers (at most ARGV[3]): each is moved to the claimer's lease, so no other
-- node fires it while the lease lasts (and any node does once it lapses).
--
-- KEYS[1]  timers:due              ZSET of durable timers (member "kind|call_id", score: due ms)
-- ARGV[1]  now (ms): timers due at or before it are claimed
-- ARGV[2]  the lease's end (ms): the claimed timers' new score
-- ARGV[3]  the most timers to claim
-- Returns {member, due ms, member, due ms, ...} as they were before the claim.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], ARGV[2], due[i]) end
return due
