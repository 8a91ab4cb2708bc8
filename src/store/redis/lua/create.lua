-- create: KEYS[1] the session; ARGV: now, idle, absolute, TTL, then field/value
-- pairs (reserved fields included). Never overwrites a live session.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  if is_live(key, now, idle, absolute) then
    return 'in-use'
  end
  redis.call('DEL', key)
end
if ARGV[4] == '0' then
  -- Already expired when handed over: storing it would only be deleted again.
  return 'saved'
end
hset_pairs(key, 5, (#ARGV - 4) / 2)
redis.call('PEXPIRE', key, ARGV[4])
return 'saved'
