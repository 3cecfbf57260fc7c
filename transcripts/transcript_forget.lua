-- Deletes a call's transcript (its recording was purged) and logs the deletion, so every
-- node's search index drops it too.
-- KEYS[1]  the call's transcript (transcripts:call:{call_id})
-- KEYS[2]  the log (transcripts:log)
-- KEYS[3]  the calls done (transcripts:done)
-- KEYS[4]  the totals (transcripts:stats; 'logged' numbers the log's entries)
-- ARGV[1]  the call id
-- ARGV[2]  the log's length kept (MAXLEN)
-- Returns 1 (deleted and logged), or 0 if there was no transcript (the call leaves the done
-- set all the same; nothing logged).
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[4], 'logged', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', 'call_id', ARGV[1], 'n', n)
return 1
