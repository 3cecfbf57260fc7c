-- Renew the leases of timers still being handled: a member still at the score we hold moves
-- to the new lease; one re-armed, cancelled or taken meanwhile is left alone.
--
-- KEYS[1]  timers:due              ZSET of durable timers
-- ARGV[1]  the new lease's end (ms)
-- ARGV[2..] (member, score held) pairs
-- Returns one 1 (renewed) or 0 (not ours any more) per member, in order.
local out = {}
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
