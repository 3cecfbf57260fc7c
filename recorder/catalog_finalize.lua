-- Store a recording's signed manifest once it is finished (recorder.catalog.Catalog.finalize):
-- only an entry still recording becomes final, so a sweep and a normal finalize never both win.
-- The indexes it is in move to the signed started_at (never added to: a discarded or purged
-- entry stays out of them).
--
-- KEYS[1]  rec:{call_id}                      the entry's hash (state must be recording)
-- KEYS[2]  recordings:open                    SET of the calls still recording
-- KEYS[3]  recordings:flagged                 ZSET of the flagged recordings, by started_at
-- KEYS[4..] the entry's indexes: recordings:all, recordings:facility:{facility_id},
--          recordings:resident:{resident_id}, recordings:family:{family_id}
-- ARGV[1]  the signed manifest (JSON)
-- ARGV[2]  1: the manifest is flagged (added to KEYS[3]); 0: not
-- ARGV[3]  started_at (the indexes' score)
-- ARGV[4]  call_id
-- Returns 1 when finalized, 0 when the entry was not recording (nothing written).
-- Errors (writing nothing) unless given at least 4 keys and exactly 4 arguments, ARGV[2] 0 or 1.

if #KEYS < 4 or #ARGV ~= 4 or (ARGV[2] ~= '0' and ARGV[2] ~= '1') then
  return redis.error_reply('catalog_finalize: 4+ keys, 4 args, flagged 0 or 1')
end
if redis.call('HGET', KEYS[1], 'state') ~= 'recording' then return 0 end
redis.call('HSET', KEYS[1], 'manifest', ARGV[1], 'state', 'final')
redis.call('SREM', KEYS[2], ARGV[4])
if ARGV[2] == '1' then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4]) end
for i = 4, #KEYS do redis.call('ZADD', KEYS[i], 'XX', ARGV[3], ARGV[4]) end
return 1
