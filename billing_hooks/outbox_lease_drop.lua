-- Give an outbox's delivery lease up, if it is still ours (a node stopping).
--
-- KEYS[1]  <stream>:lease   the holder's name
-- ARGV[1]  holder: this node's name
-- Returns 1 if the lease was ARGV[1]'s and is dropped, 0 otherwise (nothing written).

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
