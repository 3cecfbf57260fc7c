-- Hold a place for one connection of a subject, at most ARGV[3] live ones (expired places are
-- dropped first).
--
-- KEYS[1]  presence:{role}:{subject}   ZSET of the subject's connections (score: expiry)
-- ARGV[1]  now: places that expired before it are dropped
-- ARGV[2]  the member (this connection)
-- ARGV[3]  the most live connections of the subject
-- ARGV[4]  this place's expiry
-- Returns 1 if the member holds a place (already, or now), 0 if the subject is at its cap.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
return 1
