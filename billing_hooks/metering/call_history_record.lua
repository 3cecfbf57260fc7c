-- Append a settled call to its family's history once, however often settlement is retried
-- (a node that died mid-way, a settle timer on another node).
--
-- KEYS[1]  billing:calls:{family_id}      the family's settled calls (JSON), newest first
-- KEYS[2]  billing:calls:{family_id}:ids  the call ids already in KEYS[1]
-- ARGV[1]  call_id
-- ARGV[2]  the call's record (JSON), pushed at the head of KEYS[1] the first time only
-- Returns {added, length}: added 1 if this run appended the record, 0 if the call was there
-- already (nothing written); length the number of calls in KEYS[1].

if ARGV[1] == '' then return redis.error_reply('invalid: no call id') end
local added = redis.call('SADD', KEYS[2], ARGV[1])
if added == 1 then redis.call('LPUSH', KEYS[1], ARGV[2]) end
return {added, redis.call('LLEN', KEYS[1])}
