-- Add an unfinished recording to the catalog (recorder.catalog.Catalog.create), unless the call
-- already has an entry.
--
-- KEYS[1]  rec:{call_id}                      the entry's hash (must not exist)
-- KEYS[2]  recordings:open                    SET of the calls still recording
-- KEYS[3]  recordings:all                     ZSET of every recording, by started_at
-- KEYS[4]  recordings:facility:{facility_id}  ZSET, the same for its facility
-- KEYS[5]  recordings:resident:{resident_id}  ZSET, for its resident
-- KEYS[6]  recordings:family:{family_id}      ZSET, for its family
-- KEYS[7]  recordings:facilities              SET of the facilities with recordings
-- ARGV[1]  the manifest (JSON)
-- ARGV[2]  started_at (the indexes' score)
-- ARGV[3]  call_id
-- ARGV[4]  facility_id
-- Returns 1 when added, 0 when the call already had an entry (nothing written).
-- Errors (writing nothing) unless given exactly 7 keys and 4 arguments.

if #KEYS ~= 7 or #ARGV ~= 4 then return redis.error_reply('catalog_create: 7 keys, 4 args') end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'manifest', ARGV[1], 'state', 'recording', 'hold', '0')
redis.call('SADD', KEYS[2], ARGV[3])
for i = 3, 6 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3]) end
redis.call('SADD', KEYS[7], ARGV[4])
return 1
