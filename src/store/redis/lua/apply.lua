-- apply and touch: KEYS[1] the session; ARGV: now, idle, absolute, then the
-- change set. Returns {'gone'}, {'rejected', why} (an increment; nothing written) or
-- {'saved'[, previous user if the user changed]}.
local key = KEYS[1]
local meta = live_or_drop(key, now, idle, absolute)
if not meta then
  return {'gone'}
end
local previous = meta.user
local rejected = apply_and_refresh(key, 4, meta, now, idle, absolute)
if rejected then
  return {'rejected', rejected}
end
if ARGV[5] ~= 'keep' and previous then
  return {'saved', previous}
end
return {'saved'}
