-- Marks a call being transcribed by a worker (a try), unless it is done.
-- KEYS[1]  the call's transcript (transcripts:call:{call_id}, a hash)
-- ARGV[1]  the worker id
-- ARGV[2]  now (seconds)
-- Returns the try's number (status 'working', 'by' and 'updated_at' set, 'tries' counted), or
-- 0 if the transcript is done already (nothing written).
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'working', 'by', ARGV[1], 'updated_at', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'tries', 1)
