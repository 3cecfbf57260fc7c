-- Take a recording out of the catalog's indexes (recorder.catalog.Catalog.discard and
-- mark_purged), only from the state it is expected in and never while on legal hold: either
-- delete the entry (an unfinished recording that got no media) or leave a tombstone (a purge:
-- the manifest is kept, state purged).
--
-- KEYS[1]  rec:{call_id}       the entry's hash
-- KEYS[2]  recordings:open     SET of the calls still recording
-- KEYS[3..] every index it may be in: recordings:all, recordings:facility:{facility_id},
--          recordings:resident:{resident_id}, recordings:family:{family_id}, recordings:flagged
-- ARGV[1]  call_id
-- ARGV[2]  the state it must be in (recording or final)
-- ARGV[3]  the new state (purged), or '' to delete the entry
-- ARGV[4]  when (purged_at, Unix seconds; unused when deleting)
-- Returns 1 when done, 0 when the entry is in another state or on hold (nothing written).

if #KEYS < 3 or #ARGV ~= 4 then return redis.error_reply('catalog_remove: 3+ keys, 4 args') end
local found = redis.call('HMGET', KEYS[1], 'state', 'hold')
if found[1] ~= ARGV[2] or found[2] == '1' then return 0 end
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
if ARGV[3] == '' then redis.call('DEL', KEYS[1])
else redis.call('HSET', KEYS[1], 'state', ARGV[3], 'purged_at', ARGV[4]) end
return 1
