-- Set the flags a transcript added to a final recording (watch words heard), replacing earlier
-- ones (recorder.catalog.Catalog.set_watch_flags). A recording with any is indexed as flagged,
-- at its manifest's started_at. (Clearing them leaves it in that index: a monitor's flag, in
-- the signed manifest, may be why it is there, and a search checks each entry's flags.)
--
-- KEYS[1]  rec:{call_id}        the entry's hash (state must be final)
-- KEYS[2]  recordings:flagged   ZSET of the flagged recordings, by started_at
-- ARGV[1]  the flags (a JSON list; '[]' for none)
-- ARGV[2]  call_id
-- Returns 1 when set, 0 when the entry is not final (nothing written).

if redis.call('HGET', KEYS[1], 'state') ~= 'final' then return 0 end
redis.call('HSET', KEYS[1], 'watch_flags', ARGV[1])
if ARGV[1] ~= '[]' then
  local manifest = cjson.decode(redis.call('HGET', KEYS[1], 'manifest'))
  redis.call('ZADD', KEYS[2], manifest['started_at'], ARGV[2])
end
return 1
