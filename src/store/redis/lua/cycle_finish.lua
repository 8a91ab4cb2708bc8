-- Last step of cycle_id on a cluster, once the copy under the new ID exists:
-- KEYS[1] the old session; ARGV[1] its write generation when it was copied.
-- Deletes it only if nothing changed it since. Returns 'moved', 'changed' or 'gone'.
local meta = redis.call('HMGET', KEYS[1], ':m', ':gen')
if not meta[1] and redis.call('EXISTS', KEYS[1]) == 0 then
  return 'gone'
end
-- Layout 2 keeps the generation last in ':m'; layout 1 in ':gen'.
local generation = meta[1] and string.match(meta[1], '%.(%d+)$') or meta[2] or '0'
if generation ~= ARGV[1] then
  return 'changed'
end
redis.call('DEL', KEYS[1])
return 'moved'
