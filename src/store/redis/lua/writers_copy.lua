
end
local reply = run()
-- The session's metadata as the script left it (nil once it is gone), read after the
-- script's writes: over a tracking connection, Redis goes on tracking the key for it.
table.insert(reply, 1, redis.call('HGET', KEYS[1], ':m'))
return reply
