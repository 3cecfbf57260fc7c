-- Appends an entry to the identity audit log and to the family's index, in one step.
-- KEYS[1]  the log (identity_review:audit, a stream written only with XADD)
-- KEYS[2]  the family's index (identity_review:audit:family:{family_id}, a list of entry ids)
-- ARGV     the entry's fields, name then value (core.audit_trail.entry_fields)
-- Returns the new entry's id.
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV))
redis.call('RPUSH', KEYS[2], id)
return id
