end
local reply = run()
-- The whole session as the script left it (empty once it is gone), read after the
-- script's writes (over a tracking connection, Redis goes on tracking the key for it),
-- in one string of `<length>:<bytes>` items, name then value: one bulk reply is far
-- cheaper for the client to parse than an array of them.
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields do
  fields[i] = #fields[i] .. ':' .. fields[i]
end
table.insert(reply, 1, table.concat(fields))
return reply
