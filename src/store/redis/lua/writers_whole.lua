end
local reply = run()
-- The whole session as the script left it (empty once it is gone), read after the
-- script's writes: over a tracking connection, Redis goes on tracking the key for it.
table.insert(reply, 1, redis.call('HGETALL', KEYS[1]))
return reply
