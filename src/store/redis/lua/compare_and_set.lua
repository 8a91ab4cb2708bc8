-- compare_and_set: KEYS[1] the session; ARGV: now, idle, absolute, field, '1' if the
-- field is expected to hold ARGV[6] (else '0': expected absent), expected value, '1' to
-- set the field to ARGV[8] (else '0': remove it), new value. Returns {'gone'},
-- {'conflict'[, current value]} (nothing written) or {'saved'}.
local key, field = KEYS[1], ARGV[4]
local meta = live_or_drop(key, now, idle, absolute)
if not meta then
  return {'gone'}
end
local current = redis.call('HGET', key, field)
local expected = ARGV[5] == '1' and ARGV[6]
if current ~= expected then
  if current then
    return {'conflict', current}
  end
  return {'conflict'}
end
if ARGV[7] == '1' then
  redis.call('HSET', key, field, ARGV[8])
else
  redis.call('HDEL', key, field)
end
refresh_after_write(key, meta, now, idle, absolute)
return {'saved'}
