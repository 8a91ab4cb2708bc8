-- apply and touch: KEYS[1] the session; ARGV: now, idle, absolute, then the
-- change set. Returns {'gone'} or {'saved'[, previous user if the user changed]}.
local key = KEYS[1]
local created, generation, previous = live(key, now, idle, absolute)
if not created then
  redis.call('DEL', key)
  return {'gone'}
end
apply_and_refresh(key, 4, created, generation, now, idle, absolute)
if ARGV[5] ~= 'keep' and previous then
  return {'saved', previous}
end
return {'saved'}
