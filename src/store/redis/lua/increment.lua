-- increment: KEYS[1] the session; ARGV: now, idle, absolute, field, delta. Adds delta
-- to the field (absent counts as 0) with HINCRBY's exact 64-bit arithmetic and refreshes
-- the session. Returns {'gone'}, {'rejected', why} (nothing written) or {'value', the
-- new value as text}.
local key, field = KEYS[1], ARGV[4]
local meta = live_or_drop(key, now, idle, absolute)
if not meta then
  return {'gone'}
end
local reply = redis.pcall('HINCRBY', key, field, ARGV[5])
if type(reply) == 'table' and reply.err then
  return {'rejected', rejection(reply)}
end
refresh_after_write(key, meta, now, idle, absolute)
-- HINCRBY's reply became a Lua number (a double): exact below 2^53; from there, read
-- back as text.
if math.abs(reply) < 2^53 then
  return {'value', int(reply)}
end
return {'value', redis.call('HGET', key, field)}
