-- KEYS[1] a user's index (sorted set); ARGV[1] a hashed session ID, ARGV[2] the
-- index's TTL in milliseconds. Scores are this server's clock in milliseconds, so
-- pruning can tell an entry of a write still in flight from a stale one.
local time = redis.call('TIME')
local millis = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', millis), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
