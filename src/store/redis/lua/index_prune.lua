-- KEYS[1] a user's index; ARGV[1] grace in milliseconds, ARGV[2] a count k, then k
-- entries to drop outright (their sessions were deleted), then entries to drop only
-- if added more than grace ago: a younger one may belong to a write still in flight
-- whose session is not there yet. Returns how many entries were dropped.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local grace, k = tonumber(ARGV[1]), tonumber(ARGV[2])
local dropped = 0
for j = 3, 2 + k do
  dropped = dropped + redis.call('ZREM', KEYS[1], ARGV[j])
end
for j = 3 + k, #ARGV do
  local added = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[j]))
  if added and added + grace <= now then
    dropped = dropped + redis.call('ZREM', KEYS[1], ARGV[j])
  end
end
return dropped
