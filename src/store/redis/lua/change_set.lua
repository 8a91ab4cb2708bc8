-- The change-set helpers, prepended after common.lua to the scripts that write a change
-- set or a whole session (create, apply, cycle); increment and compare_and_set go
-- without, so that Redis does not build their closures at every call.

local function is_reserved(field)
  return string.sub(field, 1, 1) == ':' and string.sub(field, 2, 2) ~= ':'
end

-- Values per call when unpacking ARGV ranges: below Lua's limit on unpacked values.
local CHUNK = 1000

-- HSET of ARGV[from], ARGV[from + 1], ... (count pairs), in chunks.
local function hset_pairs(key, from, count)
  local last = from + 2 * count - 1
  for start = from, last, CHUNK do
    redis.call('HSET', key, unpack(ARGV, start, math.min(start + CHUNK - 1, last)))
  end
end

-- Adds each delta to its field (HINCRBY: exact 64-bit integers). All or nothing: on
-- the first value that is not an integer or would overflow, the fields already
-- incremented get their old values back and the rejection is returned (or the server's
-- refusal raised).
local function increment_all(key, first, m)
  local originals = {}
  for j = 0, m - 1 do
    local field = ARGV[first + 2 * j]
    originals[j + 1] = redis.call('HGET', key, field)
    local reply = redis.pcall('HINCRBY', key, field, ARGV[first + 2 * j + 1])
    if type(reply) == 'table' and reply.err then
      for k = 0, j - 1 do
        local done = ARGV[first + 2 * k]
        if originals[k + 1] then
          redis.call('HSET', key, done, originals[k + 1])
        else
          redis.call('HDEL', key, done)
        end
      end
      return rejection(reply)
    end
  end
  return nil
end

-- Applies the change set laid out in ARGV from index i (clear flag '1' or '0', user
-- operation 'keep', 'bind' or 'unbind', user, count n of set fields, n field/value
-- pairs, count m of incremented fields, m field/delta pairs, then the removed fields up
-- to the end of ARGV) to a live session, marks it refreshed now and sets its TTL.
-- Increments go first, so that a rejected one leaves everything as it was; then
-- returns its rejection ('overflow' or 'not-integer'), else nil. The set fields, the
-- user, the refresh time and the new write generation (counted so that a cluster
-- cycle_id notices a change that landed while it copied the session) go in one HSET:
-- a one-field change is HSET + PEXPIRE.
local function apply_and_refresh(key, i, meta, now, idle, absolute)
  local clear, user_op, user, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first_set = i + 4
  local m = tonumber(ARGV[first_set + 2 * n])
  local first_increment = first_set + 2 * n + 1
  local first_removed = first_increment + 2 * m
  local changed = clear == '1' or user_op ~= 'keep' or n > 0 or m > 0
    or first_removed <= #ARGV
  if clear ~= '1' and m > 0 then
    local rejected = increment_all(key, first_increment, m)
    if rejected then
      return rejected
    end
  end
  if clear == '1' then
    local doomed = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if not is_reserved(field) then
        doomed[#doomed + 1] = field
        if #doomed == CHUNK then
          redis.call('HDEL', key, unpack(doomed))
          doomed = {}
        end
      end
    end
    if #doomed > 0 then
      redis.call('HDEL', key, unpack(doomed))
    end
  end
  for start = first_removed, #ARGV, CHUNK do
    redis.call('HDEL', key, unpack(ARGV, start, math.min(start + CHUNK - 1, #ARGV)))
  end
  if user_op == 'unbind' then
    redis.call('HDEL', key, ':u', ':user')
    meta.user = false
  end
  -- Whole chunks of set fields first; the rest goes with the metadata.
  local last_set, start = first_set + 2 * n - 1, first_set
  while last_set - start + 1 > CHUNK do
    redis.call('HSET', key, unpack(ARGV, start, start + CHUNK - 1))
    start = start + CHUNK
  end
  local args = {}
  for j = start, last_set do
    args[#args + 1] = ARGV[j]
  end
  if clear == '1' then
    -- Cleared first, so each incremented field starts from nothing: it becomes its delta.
    for j = first_increment, first_removed - 1 do
      args[#args + 1] = ARGV[j]
    end
  end
  if user_op == 'bind' then
    args[#args + 1] = ':u'
    args[#args + 1] = user
    meta.user = false
  end
  local generation = meta.generation
  if changed then
    generation = generation + 1
  end
  redis.call('HSET', key, unpack(metadata_args(key, meta, now, generation, args)))
  redis.call('PEXPIRE', key, int(math.min(idle, meta.created + absolute - now)))
  return nil
end

