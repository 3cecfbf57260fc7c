-- Set a once-flag on an existing call record: exactly one caller per call and step wins
-- (the warning sent, the family's call.ended, the chain finished), across retries and nodes.
--
-- KEYS[1]  call:{call_id}   the call record (a hash)
-- ARGV[1]  the once field ("once:<step>")
-- ARGV[2]  optional: a field to set with a successful claim (e.g. warned_at)
-- ARGV[3]  its value
-- Returns 1 if this run set the flag, else 0 (also 0 if the record is gone).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local claimed = redis.call('HSETNX', KEYS[1], ARGV[1], '1')
if claimed == 1 and ARGV[2] then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
return claimed
