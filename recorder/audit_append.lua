-- Append one entry to the recording-access audit log and index it under each call it is about,
-- in one step (recorder.audit.AuditLog.append). With a once key, only the first entry with that
-- key is added while the key lives (one view per playback, however many Range requests).
--
-- KEYS[1]  audit:once:{once}     the once key (set NX with the TTL; unused without ARGV[1])
-- KEYS[2]  audit:log             the STREAM (XADD only)
-- KEYS[3..] audit:call:{call_id} LISTs of entry ids, one per call the entry is about
-- ARGV[1]  the once key's TTL in seconds, or '' for no once key
-- ARGV[2..] the entry's fields, as field, value pairs
-- Returns the new entry's id, or nil (false) for a repeat of a live once key (nothing written).

if ARGV[1] ~= '' and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
for i = 3, #KEYS do redis.call('RPUSH', KEYS[i], id) end
return id
