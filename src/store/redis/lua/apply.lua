-- apply and touch: KEYS[1] the session; ARGV: now, idle, absolute, then the
-- change set. Returns {'gone'} or {'saved'[, previous user if the user changed]}.
local key = KEYS[1]
if not is_live(key, now, idle, absolute) then
  redis.call('DEL', key)
  return {'gone'}
end
local previous = false
if ARGV[5] ~= 'keep' then
  previous = redis.call('HGET', key, ':user')
end
apply_changes(key, 4)
refresh(key, now, idle, absolute)
if previous then
  return {'saved', previous}
end
return {'saved'}
