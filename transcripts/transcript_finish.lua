-- Stores a call's signed transcript, once: a job retried after a crash is done exactly once.
-- KEYS[1]  the call's transcript (transcripts:call:{call_id}, a hash)
-- KEYS[2]  the log (transcripts:log, a stream of {call_id, n})
-- KEYS[3]  the calls done (transcripts:done, a set)
-- KEYS[4]  the totals (transcripts:stats, a hash; 'logged' numbers the log's entries)
-- ARGV[1]  the signed body (JSON)       ARGV[2]  its sha256
-- ARGV[3]  the engine                   ARGV[4]  the worker that made it
-- ARGV[5]  now (seconds)                ARGV[6]  the call id
-- ARGV[7]  seconds of audio             ARGV[8]  CPU seconds
-- ARGV[9]  the log's length kept (an exact MAXLEN)
-- Returns 1 (stored, logged as entry n = stats.logged + 1, counted), or 0 if the call was done
-- already (nothing written).
if redis.call('HGET', KEYS[1], 'status') == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'done', 'body', ARGV[1], 'sha256', ARGV[2],
  'engine', ARGV[3], 'by', ARGV[4], 'updated_at', ARGV[5], 'error', '',
  'audio_s', ARGV[7], 'cpu_s', ARGV[8])
redis.call('HINCRBY', KEYS[1], 'completions', 1)
local n = redis.call('HINCRBY', KEYS[4], 'logged', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[9], '*', 'call_id', ARGV[6], 'n', n)
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('HINCRBY', KEYS[4], 'done', 1)
redis.call('HINCRBYFLOAT', KEYS[4], 'audio_s', ARGV[7])
redis.call('HINCRBYFLOAT', KEYS[4], 'cpu_s', ARGV[8])
return 1
