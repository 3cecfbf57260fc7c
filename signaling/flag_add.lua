-- Add a monitor's flag to a call, at most ARGV[2] flags per call.
--
-- KEYS[1]  call:{call_id}:flags   LIST of the call's flags (JSON)
-- ARGV[1]  the flag (JSON)
-- ARGV[2]  the most flags a call keeps
-- ARGV[3]  how long the flags are kept after the last one (s)
-- Returns 1 if added, 0 if the call has its most flags already (nothing written).
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
