-- Last step of cycle_id on a cluster, once the copy under the new ID exists:
-- KEYS[1] the old session; ARGV[1] its write generation when it was copied.
-- Deletes it only if nothing changed it since. Returns 'moved', 'changed' or 'gone'.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'gone'
end
if (redis.call('HGET', KEYS[1], ':gen') or '0') ~= ARGV[1] then
  return 'changed'
end
redis.call('DEL', KEYS[1])
return 'moved'
