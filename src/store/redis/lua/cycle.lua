-- cycle_id on a single node, atomically: KEYS[1] the old session, KEYS[2] the new
-- one; ARGV: now, idle, absolute, '1' if ARGV[5] is the user already indexed under
-- the new ID (else '0'), that user, then the change set. Returns {'gone'},
-- {'in-use'}, {'index', user} (index the new ID under user first, then call
-- again), {'rejected', why} (an increment; nothing written) or {'saved'[, previous user]}.
local old, new = KEYS[1], KEYS[2]
local meta = live_or_drop(old, now, idle, absolute)
if not meta then
  return {'gone'}
end
local previous = meta.user
if redis.call('EXISTS', new) == 1 then
  if is_live(new, now, idle, absolute) then
    return {'in-use'}
  end
  redis.call('DEL', new)
end
if ARGV[7] == 'keep' and previous and not (ARGV[4] == '1' and ARGV[5] == previous) then
  return {'index', previous}
end
redis.call('RENAME', old, new)
local rejected = apply_and_refresh(new, 6, meta, now, idle, absolute)
if rejected then
  redis.call('RENAME', new, old)
  return {'rejected', rejected}
end
if previous then
  return {'saved', previous}
end
return {'saved'}
