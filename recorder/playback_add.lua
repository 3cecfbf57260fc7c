-- Count bytes served to one playback (recorder.playback.PlaybackMeter.add). The lifetime runs
-- from the playback's first request: later requests do not extend it.
--
-- KEYS[1]  audit:playback:{playback}   the counter (playback: subject|call_id|file|playback id)
-- ARGV[1]  bytes to add (an integer >= 0)
-- ARGV[2]  the counter's lifetime in seconds, set when it has none
-- Returns the playback's total so far.

local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return total
