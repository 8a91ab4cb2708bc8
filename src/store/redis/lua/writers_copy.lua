end
local reply = run()
-- What the writer keeps. Read after the script's writes: over a tracking connection,
-- Redis goes on tracking the key for the writer. If the session is at the generation of
-- the writer's copy or one past it (the writer's own write), its metadata (nil once it is
-- gone), from which the writer replays its write on that copy. Else (other writes came
-- between) the whole session, as HGETALL answers it.
local meta = redis.call('HGET', KEYS[1], ':m')
local generation = meta and tonumber(string.match(meta, '%.(%d+)$'))
if not meta or (held and generation and generation - held <= 1) then
  table.insert(reply, 1, meta)
  return reply
end
table.insert(reply, 1, redis.call('HGETALL', KEYS[1]))
return reply
