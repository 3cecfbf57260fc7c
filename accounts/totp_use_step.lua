-- Spends a TOTP time step: a code signs in once, and never one older than the last used.
-- KEYS[1]  the staff member's credentials hash (login:staff:{staff_id}; field totp_step)
-- ARGV[1]  the time step of the code given (an integer)
-- Returns 1 (and stores the step) if it is later than the last step used, else 0 (nothing
-- written).
local last = tonumber(redis.call('HGET', KEYS[1], 'totp_step') or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('HSET', KEYS[1], 'totp_step', ARGV[1])
return 1
