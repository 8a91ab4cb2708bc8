-- KEYS[1] a session; ARGV[1] a user. Deletes the session only if it is still bound
-- to that user, so a stale index entry never logs out somebody else.
if redis.call('HGET', KEYS[1], ':user') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
