-- KEYS[1] a session; ARGV[1] a user. Deletes the session only if it is still bound
-- to that user (':u'; ':user' in layout 1), so a stale index entry never logs out
-- somebody else.
local user = redis.call('HMGET', KEYS[1], ':u', ':user')
if (user[1] or user[2]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
