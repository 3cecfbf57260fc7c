-- Turns on a second factor being enrolled, if it is still the pending one.
-- KEYS[1]  the staff member's credentials hash (login:staff:{staff_id}; fields totp_pending,
--          totp, totp_step)
-- ARGV[1]  the secret to enable, as stored (sealed: accounts.sealed)
-- Returns the secret (now totp; totp_pending and totp_step removed), or false if the pending
-- secret is another one or none (nothing written).
local secret = redis.call('HGET', KEYS[1], 'totp_pending')
if secret ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'totp', secret)
redis.call('HDEL', KEYS[1], 'totp_pending', 'totp_step')
return secret
