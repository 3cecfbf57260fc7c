-- Take or renew the lease of an outbox's delivery: one node at a time sends, oldest first.
--
-- KEYS[1]  <stream>:lease   the holder's name, expiring unless renewed
-- ARGV[1]  holder: this node's name (not empty)
-- ARGV[2]  ttl in milliseconds (> 0)
-- Returns 1 if ARGV[1] holds the lease now (taken or renewed), 0 if another holder has it
-- (nothing written).

local ttl = tonumber(ARGV[2])
if ARGV[1] == '' or not ttl or ttl <= 0 then
  return redis.error_reply('invalid: a holder and a positive ttl')
end
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  return 1
end
return 0
