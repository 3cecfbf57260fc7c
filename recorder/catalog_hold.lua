-- Put a recording on legal hold or release it (recorder.catalog.Catalog.set_hold): a held
-- recording is never purged (catalog_remove.lua refuses it).
--
-- KEYS[1]  rec:{call_id}   the entry's hash (must exist and not be purged)
-- ARGV[1]  1: hold; 0: release
-- Returns 1 when set, 0 when there is no such entry or it is purged (nothing written).
-- Errors (writing nothing) unless ARGV[1] is 0 or 1.

if ARGV[1] ~= '0' and ARGV[1] ~= '1' then return redis.error_reply('catalog_hold: 0 or 1') end
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'purged' then return 0 end
redis.call('HSET', KEYS[1], 'hold', ARGV[1])
return 1
