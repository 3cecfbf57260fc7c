-- Remove every other consumer of the events' group that has been idle long enough with
-- nothing pending (a node gone for good, or renamed), in one step, so that none can be handed
-- an entry between the check and its removal (media.events.EventConsumer).
--
-- KEYS[1]  the stream: sfu:events (media.redis_keys.EVENTS), or a test's own
-- ARGV[1]  the consumer group (signaling)
-- ARGV[2]  our consumer's name (never removed)
-- ARGV[3]  idle ms: a consumer idle at least this long, with nothing pending, is removed
-- Returns the names of the consumers removed (possibly none).

local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['name'] ~= ARGV[2] and tonumber(info['pending']) == 0
      and tonumber(info['idle']) >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed[#removed + 1] = info['name']
  end
end
return removed
