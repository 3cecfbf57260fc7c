-- A family's sign-in lookup in one round trip: the family an e-mail names, and its password.
-- KEYS[1]  the e-mail index (login:email:{email} -> family id)
-- ARGV[1]  the prefix of a family's credentials hash ('login:family:'; the script reads
--          ARGV[1] .. <family id>, the key accounts.redis_keys.LOGIN_FAMILY names)
-- Returns false if the e-mail is not registered, else {family id, password hash or false}.
-- Writes nothing.
local family = redis.call('GET', KEYS[1])
if not family then return false end
return {family, redis.call('HGET', ARGV[1] .. family, 'password')}
